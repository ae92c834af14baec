import socket

import pytest

from tests.conftest import NetworkAccessError


def test_opening_a_network_connection_fails_the_test() -> None:
    with pytest.raises(NetworkAccessError, match="network connection"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.5)


def test_unix_sockets_stay_usable() -> None:
    left, right = socket.socketpair()
    left.sendall(b"x")
    assert right.recv(1) == b"x"
    left.close()
    right.close()
