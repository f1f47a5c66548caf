"""``python -m e2e.mesh --kubeconfig PATH [--metrics-flavour linkerd|istio] [--proxy-port N]
[--control-port N] [--metrics-port N] [--host ADDR] [--seed N] [--ignore-namespaces A,B]
[--log-level LEVEL]``: run the simulated mesh data plane until SIGTERM or SIGINT.

Exit codes: 0 after a signal, 2 when the kubeconfig cannot be loaded or a port is taken."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from e2e.mesh.app import SYSTEM_NAMESPACES, MeshConfig, run
from e2e.mesh.kubeapi import KubeError
from e2e.mesh.metrics import FLAVOURS


def parse_args(argv: list[str] | None = None) -> MeshConfig:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.mesh",
        description="Run the simulated service-mesh data plane against a Kubernetes API server until "
        "SIGTERM or SIGINT. Exit codes: 0 after a signal, 2 when the kubeconfig cannot be loaded or a "
        "port is taken.",
    )
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig of the API server to watch (default: $KUBECONFIG)")
    parser.add_argument("--metrics-flavour", choices=FLAVOURS, default="linkerd", help="whose metric names to export")
    parser.add_argument("--proxy-port", type=int, default=0, help="port of the L7 proxy (0: any free port)")
    parser.add_argument("--control-port", type=int, default=0, help="port of the JSON control API")
    parser.add_argument("--metrics-port", type=int, default=0, help="port of the Prometheus /metrics endpoint")
    parser.add_argument("--host", default="127.0.0.1", help="address every server listens on")
    parser.add_argument(
        "--ignore-namespaces",
        default=",".join(SYSTEM_NAMESPACES),
        help="comma-separated namespaces whose objects are ignored ('' for none; default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the routing and error-rate randomness")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    for name in ("proxy_port", "control_port", "metrics_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} must be a port number")
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # The kubernetes client logs every retry of urllib3 at WARNING; the watcher reports them.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    return MeshConfig(
        kubeconfig=args.kubeconfig,
        metrics_flavour=args.metrics_flavour,
        host=args.host,
        proxy_port=args.proxy_port,
        control_port=args.control_port,
        metrics_port=args.metrics_port,
        seed=args.seed,
        ignore_namespaces=tuple(n.strip() for n in args.ignore_namespaces.split(",") if n.strip()),
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        asyncio.run(run(config))
    except KubeError as exc:
        logging.getLogger("e2e.mesh").error("%s", exc)
        return 2
    except OSError as exc:
        logging.getLogger("e2e.mesh").error("cannot listen: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
