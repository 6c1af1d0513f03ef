"""One initializer per sublayer.

An unseeded Keras initializer fixes its seed when it is created, so one
instance handed to two sublayers gives them the same values (or, where their
shapes differ, values drawn from the same stream and proportional to each
other). A block therefore keeps the initializer it was given, for its config,
and hands each sublayer a copy of its own, as keras-hub's `clone_initializer`
does.
"""

import zlib

import keras


def for_sublayer(initializer, name):
    """A copy of `initializer` for the sublayer called `name`.

    - Unseeded: a clone, which draws a seed of its own when created (from
      Python's generator, so `keras.utils.set_random_seed` still makes the
      whole layer reproducible).
    - Seeded with an integer: a clone seeded with one derived from that seed
      and `name`, so that the layer stays reproducible and its sublayers
      still differ.
    - Seeded with a `keras.random.SeedGenerator`, constant initializers and
      plain functions: the object itself (a generator advances at each call;
      the others have nothing random to share).
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    seed = config["seed"]
    if isinstance(seed, int) and not isinstance(seed, bool):
        config = {**config, "seed": (seed + zlib.crc32(name.encode())) % 2**31}
    elif seed is not None:
        return initializer
    return initializer.__class__.from_config(config)
