"""Allow-list of peer networks for nginx's callbacks and its push connections.

Example::

    >>> trusted = TrustedPeers.parse("127.0.0.1/32,::1/128")
    >>> trusted.allows("127.0.0.1"), trusted.allows("::ffff:127.0.0.1"), trusted.allows("10.0.0.1")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TRUSTED_PEERS = "127.0.0.1/32,::1/128"


@dataclass(frozen=True, slots=True)
class TrustedPeers:
    """A set of networks; ``allows(address)`` never raises (garbage is not allowed).

    Example::

        >>> TrustedPeers.parse("10.0.0.0/8").allows("10.1.2.3")
        True
    """

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> TrustedPeers:
        """Networks from ``"a/n,b/m"`` or an iterable; a bad entry raises ``ValueError``."""
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        networks: list[Network] = []
        for item in items:
            text = item.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ValueError(f"trusted peers: {text!r} is not a network ({exc})") from None
        if not networks:
            raise ValueError("trusted peers: no network given")
        return cls(tuple(networks))

    def allows(self, address: str | None) -> bool:
        """True when ``address`` (an IP, optionally with a ``%zone``) is in a network."""
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)
