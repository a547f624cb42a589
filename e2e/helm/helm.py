#!/usr/bin/env python3
"""Helm for the test suite, through the real Helm library bundled in the PyPI wheel helm-sdkpy.

No helm binary is packaged where the tests run; helm-sdkpy (0.1.32, Helm v4) is. This script is
a thin command line over it, so that the Rust tests (e2e/tests/chart.rs) can drive Helm and read
its answers as JSON:

    helm.py lint CHART_DIR
    helm.py install   --kubeconfig K --namespace NS RELEASE CHART_DIR [--values FILE] [--create-namespace]
    helm.py upgrade   --kubeconfig K --namespace NS RELEASE CHART_DIR [--values FILE]
    helm.py status    --kubeconfig K --namespace NS RELEASE
    helm.py uninstall --kubeconfig K --namespace NS RELEASE
    helm.py version

VALUES files are JSON (a subset of YAML); they are merged over the chart's values.yaml by Helm,
as `helm install -f FILE` does. Nothing waits for readiness: no pod ever runs in the test control
plane. Success prints one JSON document on stdout and exits 0; a Helm error prints Helm's message
on stderr and exits 1; a missing or broken helm-sdkpy exits 3 with a message saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def load_helm():
    try:
        import helm_sdkpy
    except Exception as e:  # ImportError, or cffi failing to load the bundled library
        print(
            f"helm.py: cannot import helm_sdkpy ({e}); install it with "
            "`pip install --ignore-requires-python helm-sdkpy==0.1.32 cffi` or run e2e/install-deps python",
            file=sys.stderr,
        )
        sys.exit(3)
    return helm_sdkpy


def read_values(path: str | None) -> dict | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def release_summary(r: dict) -> dict:
    """The parts of a release the tests look at; the manifest is the rendered chart."""
    keep = ("name", "namespace", "version", "revision", "status", "info", "manifest", "config", "chart")
    return {k: r[k] for k in keep if k in r} or r


def main() -> int:
    p = argparse.ArgumentParser(prog="helm.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    lint = sub.add_parser("lint")
    lint.add_argument("chart")

    for name in ("install", "upgrade", "status", "uninstall"):
        s = sub.add_parser(name)
        s.add_argument("--kubeconfig", required=True)
        s.add_argument("--namespace", required=True)
        s.add_argument("release")
        if name in ("install", "upgrade"):
            s.add_argument("chart")
            s.add_argument("--values")
            s.add_argument("--timeout", type=int, default=120)
        if name == "install":
            s.add_argument("--create-namespace", action="store_true")

    sub.add_parser("version")
    args = p.parse_args()
    helm = load_helm()

    try:
        if args.cmd == "version":
            out = {"helm_sdkpy": helm.__version__, "library": helm.get_version()}
        elif args.cmd == "lint":
            # Lint needs no cluster; the configuration only names a namespace.
            cfg = helm.Configuration(namespace="default")
            res = asyncio.run(helm.Lint(cfg).run(args.chart))
            # helm-sdkpy serializes Go errors as {}: keep severity and path.
            msgs = [{"severity": m.get("Severity"), "path": m.get("Path")} for m in res.get("Messages") or []]
            out = {"errors": sum(1 for m in msgs if (m["severity"] or 0) >= 3), "messages": msgs}
        else:
            cfg = helm.Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)
            if args.cmd == "install":
                r = asyncio.run(
                    helm.Install(cfg).run(
                        args.release,
                        args.chart,
                        values=read_values(args.values),
                        create_namespace=args.create_namespace,
                        wait=False,
                        timeout=args.timeout,
                    )
                )
                out = release_summary(r)
            elif args.cmd == "upgrade":
                r = asyncio.run(
                    helm.Upgrade(cfg).run(
                        args.release,
                        args.chart,
                        values=read_values(args.values),
                        wait=False,
                        timeout=args.timeout,
                        # Like `helm upgrade -f FILE` without --reuse-values: the chart's
                        # defaults plus FILE, nothing carried over from the last revision.
                        reset_values=True,
                    )
                )
                out = release_summary(r)
            elif args.cmd == "status":
                out = release_summary(asyncio.run(helm.Status(cfg).run(args.release)))
            else:
                out = asyncio.run(helm.Uninstall(cfg).run(args.release, wait=False)) or {}
    except helm.HelmError as e:
        print(f"helm {args.cmd} failed: {e}", file=sys.stderr)
        return 1

    json.dump(out, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
