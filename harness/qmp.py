"""Minimal QMP (QEMU Machine Protocol) client over an AF_UNIX socket.

Standard library only.  QMP is line-delimited JSON: the server greets, the
client sends ``qmp_capabilities``, then every command gets exactly one
``return`` or ``error`` reply, while asynchronous events may arrive at any
time.  Events are kept aside in :attr:`QMP.events` so a test can wait for
them later.  Every blocking operation has a deadline.

:class:`LineSocket`, the line transport underneath, is also what
harness/vm.py uses for the guest agent on ttyS1.
"""

import json
import socket
import time


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

    def wait_event(self, name, timeout=30.0):
        """Remove and return the oldest event called ``name``.

        Looks at the events already set aside first, then reads the socket
        until one arrives; raises :class:`QMPError` after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            msg = self._read_message(deadline, f"event {name}")
            if "event" in msg:
                self.events.append(msg)

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


class LineSocket:
    """A connected stream socket read one ``\\n``-terminated line at a time."""

    def __init__(self, path, timeout):
        """Connect to ``path``, retrying for up to ``timeout`` seconds.

        Raises :class:`ConnectionError` if it still fails at the deadline.
        """
        self._buf = b""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                break
            except OSError as e:
                sock.close()
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"cannot connect to {path}: {e}") from e
                time.sleep(0.05)
        self._sock = sock

    def send_line(self, text):
        """Send ``text`` plus a newline."""
        if self._sock is None:
            raise ConnectionError("socket is closed")
        self._sock.sendall(text.encode() + b"\n")

    def read_line(self, deadline, what="a line"):
        """Return the next line (decoded, without ``\\r\\n``).

        ``deadline`` is a :func:`time.monotonic` value.  Raises
        :class:`TimeoutError` when it passes and :class:`ConnectionError`
        when the peer closes the socket; ``what`` names the awaited line in
        those messages.
        """
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            if self._sock is None:
                raise ConnectionError("socket is closed")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"connection closed while waiting for {what}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8", "replace").rstrip("\r")

    def close(self):
        """Close the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
