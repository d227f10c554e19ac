"""Replays call sequences through CPython's functools.lru_cache for tests/functools_differential.rs.

Reads one JSON array of cases on stdin and writes one JSON array of results on stdout, in order.

A case is one of:
  {"kind": "f",   "maxsize": N or null, "calls": [x, ...]}          one int argument
  {"kind": "g",   "maxsize": N or null, "calls": [[name, n], ...]}  a str and an int
  {"kind": "fib", "maxsize": N or null, "n": n}                     recursive Fibonacci

Each result is {"steps": [[hits, misses, currsize], ...]} with one step after every call (for
"fib", one step after the outermost call), and for "fib" also "value": fib(n) as a decimal string.
"""

import functools
import json
import sys


def counts(cached):
    info = cached.cache_info()
    return [info.hits, info.misses, info.currsize]


def replay(case):
    maxsize = case["maxsize"]
    kind = case["kind"]
    if kind == "f":
        f = functools.lru_cache(maxsize=maxsize)(lambda x: x)
        steps = []
        for x in case["calls"]:
            f(x)
            steps.append(counts(f))
        return {"steps": steps}
    if kind == "g":
        g = functools.lru_cache(maxsize=maxsize)(lambda name, n: f"{name}:{n}")
        steps = []
        for name, n in case["calls"]:
            g(name, n)
            steps.append(counts(g))
        return {"steps": steps}
    if kind == "fib":

        @functools.lru_cache(maxsize=maxsize)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        value = fib(case["n"])
        return {"steps": [counts(fib)], "value": str(value)}
    raise ValueError(f"unknown case kind {kind!r}")


def main():
    cases = json.load(sys.stdin)
    json.dump([replay(case) for case in cases], sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
