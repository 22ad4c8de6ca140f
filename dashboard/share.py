"""``make share``: serve the dashboard on the LAN, as TensorBoard's ``--bind_all`` does.

Binds 0.0.0.0, sets ``server.allowedHosts`` to this machine's own names and addresses (so a
DNS-rebinding page cannot reach the websocket under a foreign host name), prints the URL to
share, then becomes ``python -m dashboard.serve`` (``streamlit run dashboard/app.py`` with the
anti-framing headers installed before the server starts). Other machines can view; acting
needs the password (dashboard/auth.py).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

import psutil

DEFAULT_PORT = 8501


def lan_addresses() -> list[str]:
    """This machine's non-loopback IP addresses (IPv4 first)."""
    found: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = addr.address.split("%")[0]
            parsed = ipaddress.ip_address(ip)
            if parsed.is_loopback or parsed.is_link_local or ip in found:
                continue
            found.append(ip)
    return sorted(found, key=lambda ip: (":" in ip, ip))


def allowed_hosts() -> list[str]:
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()]
    names += lan_addresses()
    out: list[str] = []
    for name in names:
        if name and name.lower() not in out:
            out.append(name.lower())
    return out


def command(port: int) -> list[str]:
    cmd = [sys.executable, "-m", "dashboard.serve", "--server.address", "0.0.0.0"]
    cmd += ["--server.port", str(port)]
    for host in allowed_hosts():
        cmd += ["--server.allowedHosts", host]
    return cmd


def main() -> None:
    port = int(os.environ.get("PORT", DEFAULT_PORT))
    ips = [ip for ip in lan_addresses() if ":" not in ip]
    where = ips[0] if ips else socket.gethostname()
    print(f"Sharing the Retro ML dashboard on the LAN: http://{where}:{port}")
    print("Anyone who reaches this address can view; actions from other machines need the")
    print("password (admin_password in .streamlit/secrets.toml, or RETRO_ML_PASSWORD).")
    print(f"Allowed host names: {', '.join(allowed_hosts())}", flush=True)
    cmd = command(port)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
