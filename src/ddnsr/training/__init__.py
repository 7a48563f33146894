"""Training D and R together, one module per stage of a run.

``config``      TrainConfig, the presets (the one source of defaults) and what may change on resume
``data``        records.json and the official unpaired crop stream
``networks``    the networks, the losses' settings and the optimisers of a configuration
``losses``      DDNSR's losses and one training step's per-network gradients
``precision``   'auto' precision and fp16 loss scaling
``distributed`` several processes under torchrun (gradient averaging, weight agreement)
``runlock``     one trainer per run folder
``checkpoint``  checkpoints: atomic, the last two kept, loaded without running code, fallback
``runlog``      losses.csv, TensorBoard, sample grids, loss curves
``export``      the final model files with the training facts
``loop``        train(): the stages above, top to bottom
"""
