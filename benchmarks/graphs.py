"""Section `graphs` (TensorFlow): the operations of the traced graphs of the
same pairs as `models`, by type."""

import keras

from benchmarks import _pairs


def measure(args):
    """The operations of the traced inference and training graphs, ours
    against the reference, by type (TensorFlow): where a block would add work
    over keras.applications' plain functional graph, it shows here, without
    the noise of a timing."""
    if keras.config.backend() != "tensorflow":
        print("  (TensorFlow only)")
        return []
    import collections

    import tensorflow as tf

    spec = tf.TensorSpec((args.batch_size, args.image_size, args.image_size, 3))
    rows = []
    for name, ours, reference in _pairs.model_pairs(args):
        for training in (False, True):
            counts = []
            for model in (ours, reference):
                function = tf.function(
                    lambda x, model=model, training=training: model(
                        x, training=training
                    )
                )
                graph = function.get_concrete_function(spec).graph
                counts.append(
                    collections.Counter(op.type for op in graph.get_operations())
                )
            types = sorted(set(counts[0]) | set(counts[1]))
            rows.append(
                {
                    "case": f"{name} {'training' if training else 'inference'}",
                    "ours_ops": sum(counts[0].values()),
                    "reference_ops": sum(counts[1].values()),
                    # Op type: (ours, reference), where the counts differ.
                    "differences": {
                        op: (counts[0][op], counts[1][op])
                        for op in types
                        if counts[0][op] != counts[1][op]
                    },
                }
            )
            row = rows[-1]
            print(
                f"  {row['case']:<48} ops {row['ours_ops']} against "
                f"{row['reference_ops']}; differ: {row['differences']}",
                flush=True,
            )
    return rows
