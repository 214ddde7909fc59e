"""A connected UNIX stream socket read one line at a time (QMP, the guest agent)."""

import socket
import time


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
