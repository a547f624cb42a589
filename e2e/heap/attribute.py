"""Per-tenant heap by holder, from two heaptrack stack files (cost: leaked bytes).

Usage: attribute.py SMALL.stacks LARGE.stacks TENANTS_ADDED

Each allocation is put under the deepest frame of regie's own code on its stack (where it was
allocated: a watch's deserialisation counts for the cache the object then goes into), then under
a holder by the patterns below; the difference between the two records over the tenants added
is the marginal heap per tenant.
"""

import collections
import re
import sys

# (holder, substrings of the deepest regie frame), first match wins.
HOLDERS = [
    ("caches of Tenants (what their watch allocated)", ["controller::follow_tenants"]),
    ("caches of components and packages", ["controller::follow", "controller::run::_{{closure}}::_{{closure}}"]),
    ("caches of invoicing's kinds", ["invoicing::watch"]),
    ("own caches: kept values and keys", ["cache::Filler", "cache::key_of"]),
    ("caches of Tenants and ServiceLevels", ["controller::run::_{{closure}}"]),
    ("tenants, components and packages as kept: spec texts, metadata", ["controller::kept::"]),
    ("invoicing's kept ledgers", ["invoicing::Ledger"]),
    ("probes in flight", ["sla::prober"]),
    ("child index", ["controller::children"]),
    # Transient: what a scrape of /metrics or an invoicing pass holds while it runs, when the
    # benchmark's kill falls in the middle of one.
    ("a metrics scrape in flight", ["::write_text", "sla::metrics::sample"]),
    ("an invoicing pass in flight", ["invoicing::pass_once", "billing::engine", "billing::pricing"]),
    ("SLA state", ["controller::probing", "sla::", "billing::amsterdam"]),
]


def frame_name(frame):
    name = frame.split(" (")[0]
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    for a, b in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("..", "::"), ("$C$", ","),
                 ("$RF$", "&"), ("$u7b$", "{"), ("$u7d$", "}")]:
        name = name.replace(a, b)
    return name


def by_holder(path):
    total = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            stack, _, cost = line.rstrip("\n").rpartition(" ")
            if not cost.isdigit():
                continue
            regie = next((frame_name(x) for x in reversed(stack.split(";"))
                          if "regie" in x and "regie_crds" not in x), "")
            holder = next((h for h, pats in HOLDERS if any(p in regie for p in pats)),
                          "the rest (mostly what was in flight at the kill)")
            total[holder] += int(cost)
    return total


def main():
    small, large, added = by_holder(sys.argv[1]), by_holder(sys.argv[2]), float(sys.argv[3])
    print("| holder | KiB per tenant |")
    print("|---|---:|")
    names = [h for h, _ in HOLDERS] + ["the rest (mostly what was in flight at the kill)"]
    for h in names:
        print(f"| {h} | {(large[h] - small[h]) / added / 1024:.2f} |")
    whole = (sum(large.values()) - sum(small.values())) / added / 1024
    print(f"| **live heap** | **{whole:.2f}** |")
    transient = [h for h, _ in HOLDERS if h.endswith("in flight") and h != "probes in flight"]
    held = whole - sum(large[h] - small[h] for h in transient) / added / 1024
    print(f"| **live heap without a scrape or pass in flight** | **{held:.2f}** |")


if __name__ == "__main__":
    main()
