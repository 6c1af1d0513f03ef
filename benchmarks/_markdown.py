"""The Benchmarks page's tables of one backend, from `run.py`'s results."""

from benchmarks import _harness


def markdown(results):
    """The Benchmarks page's tables for one backend."""
    lines = _header(results, results["measured"])
    comparisons = [
        row
        for name in ("models", "native", "build", "lrn")
        for row in results.get(name, [])
    ]
    lines += _table(
        ["Case", "Input", "Ours:", "Reference:", "Ratio (pairs min-max)", "Goal"],
        [
            [
                row["case"],
                row["input"],
                _seconds(row["ours_s"]),
                _seconds(row["reference_s"]),
                _harness.spread(row),
                ""
                if row["goal"] is None
                else f"<= {row['goal']:.2f}"
                + (" ✓" if row["ratio"] <= row["goal"] else " ✗"),
            ]
            for row in comparisons
        ],
    )
    lines += _table(
        [
            "Traced graph (TensorFlow)",
            "Operations, ours:",
            "Reference:",
            "Op types whose counts differ (ours, reference)",
        ],
        [
            [
                row["case"],
                f"{row['ours_ops']:,}",
                f"{row['reference_ops']:,}",
                ", ".join(
                    f"{op} ({a}, {b})" for op, (a, b) in row["differences"].items()
                )
                or "none",
            ]
            for row in results.get("graphs", [])
        ],
    )
    lines += _table(
        [
            "Training throughput",
            "Input",
            "Ours:",
            "Reference:",
            "Ratio of times (pairs min-max)",
        ],
        [
            [
                row["case"].removesuffix(" training throughput"),
                row["input"],
                f"{row['ours_images_per_s']:,.1f} images/s",
                f"{row['reference_images_per_s']:,.1f} images/s",
                _harness.spread(row),
            ]
            for row in results.get("throughput", [])
        ],
    )
    # Callbacks are judged on the hook time: the epoch-time ratio is the same
    # question, but its run-to-run spread is wider than the goal.
    lines += _table(
        [
            "Callbacks, at their defaults",
            "Epoch:",
            "Without:",
            "Ratio (pairs min-max)",
            "Hook time per epoch, over the epoch without (runs min-max)",
            "Goal",
        ],
        [
            [
                row["case"].removeprefix("epoch with "),
                _seconds(row["ours_s"]),
                _seconds(row["reference_s"]),
                _harness.spread(row),
                share(row),
                f"<= {row['goal'] - 1:.0%}"
                + (" ✓" if row["hook_share"] <= row["goal"] - 1 else " ✗"),
            ]
            for row in results.get("callbacks", [])
        ],
    )
    # Per step, as images/s: the timed calls hold `steps` steps each.
    lines += _table(
        [
            "Training step, N replicas against 1",
            "Engine",
            "Input",
            "1 replica:",
            "N replicas:",
            "Ratio of step times (pairs min-max)",
            "Scaling efficiency (pairs min-max)",
        ],
        [
            [
                row["case"],
                row["engine"],
                row["input"],
                f"{_seconds(row['reference_s'] / row['steps'])}, "
                f"{row['reference_images_per_s']:,.1f} images/s",
                f"{_seconds(row['ours_s'] / row['steps'])}, "
                f"{row['ours_images_per_s']:,.1f} images/s",
                _harness.spread(row),
                f"{row['efficiency']:.0%} ({row['efficiency_min']:.0%}-"
                f"{row['efficiency_max']:.0%})",
            ]
            for row in results.get("distribute", [])
        ],
    )
    lines += _table(
        [
            "phi:",
            "Resolution:",
            "Width:",
            "Depth:",
            "Blocks:",
            "Parameters:",
            "MACs:",
            "Build:",
            "Preset B{phi} MACs:",
            "Paper B{phi} FLOPs:",
        ],
        [
            [
                row["phi"],
                row["resolution"],
                f"{row['width_coefficient']:.3f}",
                f"{row['depth_coefficient']:.3f}",
                row["blocks"],
                f"{row['parameters']:,}",
                _giga(row["macs"]),
                f"{row['build_s']:.2f} s",
                _giga(row["preset_macs"]),
                f"{row['paper_flops_of_b']} G" if row["paper_flops_of_b"] else "",
            ]
            for row in results.get("growth", [])
        ],
    )
    lines += _deploy_tables(results)
    return "\n".join(lines)


def deploy_markdown(results):
    """The `deploy` section's tables alone, for the Deployment page."""
    lines = _header(results, ["deploy"])
    load = results["measured"]["deploy"].get("load_average")
    if load and None not in load:
        lines[-2] += (
            f" Load average (1 minute) {load[0]:.1f} before the run, "
            f"{load[1]:.1f} after it (its own threads included)."
        )
    return "\n".join(lines + _deploy_tables(results))


def _header(results, names):
    """The line that says what `names` were measured on, and when."""
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    runs = {}  # (day, settings, note): the sections measured so
    for name in names:
        run = results["measured"][name]
        key = (run["date"][:10], run["settings"], run.get("note"))
        runs.setdefault(key, []).append(name)
    measured = "; ".join(
        f"{', '.join(names)} on {day} ({settings}{f'; {note}' if note else ''})"
        for (day, settings, note), names in runs.items()
    )
    return [
        "<!-- Generated by benchmarks/run.py; do not edit. -->",
        "",
        f"Backend **{env['backend']}** ({versions}), {env['machine']}, "
        f"devices {', '.join(env['devices'])}. Measured: {measured}.",
        "",
    ]


def _deploy_tables(results):
    """Per model and batch, each runtime's time and its ratio to Keras'; per
    model and format, the file, the time to write it and how far its outputs
    are from Keras'."""
    rows = results.get("deploy", [])
    runtimes = list(dict.fromkeys(row["runtime"] for row in rows))
    cases = {}  # (model, batch): {runtime: row}
    for row in rows:
        cases.setdefault((row["model"], row["batch_size"]), {})[row["runtime"]] = row

    def cell(row, reference):
        if row["batch_size"] == 1:  # latency
            time = _seconds(row["reference_s" if reference else "ours_s"])
        else:
            key = "reference_images_per_s" if reference else "ours_images_per_s"
            time = f"{row[key]:,.{1 if row[key] < 100 else 0}f} images/s"
        return time if reference else f"{time}, {_harness.spread(row)}"

    lines = _table(
        [
            "Model, on a CPU",
            "Batch",
            "Keras predict_on_batch:",
            *(f"{runtime}, ratio of times (repeats min-max):" for runtime in runtimes),
        ],
        [
            [
                model,
                f"{batch} ({'latency' if batch == 1 else 'throughput'})",
                cell(next(iter(by_runtime.values())), reference=True),
                *(cell(by_runtime[runtime], reference=False) for runtime in runtimes),
            ]
            for (model, batch), by_runtime in cases.items()
        ],
    )
    files = {}  # (model, runtime): [rows of each batch]
    for row in rows:
        files.setdefault((row["model"], row["runtime"]), []).append(row)
    table = []
    for (model, runtime), of_batches in files.items():
        row = of_batches[0]
        if runtime == runtimes[0]:  # Keras' own file first
            table.append(
                [
                    model,
                    "Keras (.keras)",
                    _megabytes(row["reference_size_bytes"]),
                    f"{row['reference_save_s']:.1f} s",
                    "",
                ]
            )
        table.append(
            [
                model,
                f"{runtime} ({row['format']})",
                _megabytes(row["size_bytes"]),
                f"{row['export_s']:.1f} s",
                f"{max(r['max_difference'] for r in of_batches):.1e}",
            ]
        )
    lines += _table(
        [
            "Model",
            "Format",
            "File size:",
            "Written in:",
            "Largest output difference from Keras (over max(1, max |logit|)):",
        ],
        table,
    )
    return lines


def _table(columns, rows):
    """A Markdown table and the blank line after it, or nothing without rows.
    A column whose heading ends with ":" is right-aligned (the ":" dropped)."""
    if not rows:
        return []
    headings = [column.removesuffix(":") for column in columns]
    rules = ["---:" if column.endswith(":") else "---" for column in columns]
    return [
        _row(headings),
        _row(rules),
        *(_row(row) for row in rows),
        "",
    ]


def _row(cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _megabytes(value):
    return f"{value / 1e6:.1f} MB"


def _giga(value):
    return "" if value is None else f"{value / 1e9:.2f} G"


def share(row):
    return (
        f"{row['hook_share']:.1%} ({row['hook_share_min']:.1%}-"
        f"{row['hook_share_max']:.1%})"
    )


def _seconds(value):
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
