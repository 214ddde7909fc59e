"""Minimal QMP (QEMU Machine Protocol) client over an AF_UNIX socket.

Standard library only.  QMP is line-delimited JSON: the server greets, the
client sends ``qmp_capabilities``, then every command gets exactly one
``return`` or ``error`` reply, while asynchronous events may arrive at any
time.  Events are kept aside in :attr:`QMP.events`.  Every blocking operation has a deadline.

The line transport underneath is :class:`lines.LineSocket`.
"""

import json
import time

from .lines import LineSocket


class QMPError(Exception):
    """A QMP command failed, or the connection broke or timed out.

    ``error_class`` and ``desc`` are QEMU's error class and description
    when QEMU answered with an error, else ``None``.
    """

    def __init__(self, message, error_class=None, desc=None):
        super().__init__(message)
        self.error_class = error_class
        self.desc = desc


class QMP:
    """A connected, capability-negotiated QMP session.

    ``QMP(path, timeout)`` retries the connection for up to ``timeout``
    seconds, reads the greeting and leaves capability negotiation mode.
    """

    def __init__(self, path, timeout=30.0):
        self.events = []
        self._next_id = 0
        try:
            self._chan = LineSocket(path, timeout)
        except ConnectionError as e:
            raise QMPError(str(e)) from e
        try:
            greeting = self._read_message(time.monotonic() + timeout, "QMP greeting")
            if "QMP" not in greeting:
                raise QMPError(f"unexpected QMP greeting: {greeting!r}")
            self.greeting = greeting["QMP"]
            self.execute("qmp_capabilities")
        except BaseException:
            self.close()
            raise

    def execute(self, cmd, timeout=60.0, **args):
        """Run ``cmd`` and return its ``return`` value.

        Keyword arguments become the command's arguments, with ``_`` turned
        into ``-`` (``max_bandwidth=1`` sends ``"max-bandwidth": 1``).
        Raises :class:`QMPError` carrying QEMU's error class and description.
        """
        self._next_id += 1
        req_id = f"h{self._next_id}"
        msg = {"execute": cmd, "id": req_id}
        if args:
            msg["arguments"] = {k.replace("_", "-"): v for k, v in args.items()}
        try:
            self._chan.send_line(json.dumps(msg))
        except OSError as e:
            raise QMPError(f"{cmd}: cannot send: {e}") from e
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline, f"the reply to {cmd}")
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != req_id:
                raise QMPError(f"{cmd}: reply for another request: {reply!r}")
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"{cmd} failed: {err.get('class')}: {err.get('desc')}",
                               err.get("class"), err.get("desc"))
            return reply.get("return")

    def close(self):
        """Close the connection (idempotent)."""
        self._chan.close()

    def _read_message(self, deadline, what):
        """Return the next JSON object, or raise :class:`QMPError`."""
        try:
            line = self._chan.read_line(deadline, what)
        except (TimeoutError, OSError) as e:
            raise QMPError(f"QMP: {e}") from e
        try:
            return json.loads(line)
        except ValueError as e:
            raise QMPError(f"QMP: malformed message {line[:200]!r}") from e
