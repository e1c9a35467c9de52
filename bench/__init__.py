"""Nova Streaming benchmarks: ``python -m bench`` (``make bench``) writes docs/benchmarks.md.

A benchmark is a module ``bench/bench_<name>.py``; the harness finds it by its file name
(nothing to register) and runs it alone with ``python -m bench --only <name>``. It
defines ``run(ctx)`` returning its :class:`Section` objects and may set ``ORDER`` (an
int; lower runs and prints first, default 100) and ``TITLE``.

Every result is a ratio against a baseline measured in the same run (absolute numbers
shown alongside) and every target is a :class:`Target` with PASS or FAIL.

Example (a whole bench module)::

    from bench import Context, Section, Table, Target
    from bench._timing import OpCase, time_ops

    ORDER = 50

    def run(ctx: Context) -> list[Section]:
        stats = time_ops([OpCase("baseline", "f()", {"f": list}),
                          OpCase("ours", "f()", {"f": dict})], repeats=ctx.repeats(7))
        ratio = stats["ours"].best_ns / stats["baseline"].best_ns
        return [Section("Demo", "Why and how.",
                        targets=[Target("ours vs baseline", "<= 1.30x", f"{ratio:.2f}x",
                                        ratio <= 1.3)])]
"""

from bench._report import Context, Section, Table, Target

__all__ = ["Context", "Section", "Table", "Target"]
