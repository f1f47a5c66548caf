"""``python -m e2e.podnet --kubeconfig PATH --netns NAME --cidr 10.244.N.0/20 [--control-port N]
[--log-level LEVEL]``: serve the Pods of the cluster at their pod IPs until SIGTERM or SIGINT.

The namespace must exist with the range routed into it (:func:`e2e.netns.route_range_into`);
:func:`e2e.podnet.launcher.start_pod_network` does both and starts this. Exit codes: 0 after a
signal, 2 when the kubeconfig cannot be loaded, the namespace entered or the control port taken."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from pathlib import Path

from e2e.mesh.kubeapi import KubeError
from e2e.podnet.app import PodNetConfig, run


def parse_args(argv: list[str] | None = None) -> PodNetConfig:
    parser = argparse.ArgumentParser(prog="python -m e2e.podnet", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig of the API server (default: $KUBECONFIG)")
    parser.add_argument("--netns", required=True, help="network namespace (under /run/netns) the range is local in")
    parser.add_argument("--cidr", required=True, type=ipaddress.IPv4Network, help="the pod range to serve")
    parser.add_argument("--control-port", type=int, default=0, help="port of the control endpoint on 127.0.0.1")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if not 0 <= args.control_port <= 65535:
        parser.error("--control-port must be a port number")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    return PodNetConfig(kubeconfig=args.kubeconfig, netns=args.netns, cidr=args.cidr, control_port=args.control_port)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        asyncio.run(run(config))
    except KubeError as exc:
        logging.getLogger("e2e.podnet").error("%s", exc)
        return 2
    except OSError as exc:
        logging.getLogger("e2e.podnet").error("cannot serve: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
