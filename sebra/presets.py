"""Settings for the built-in benchmark, shared by the demo (``make demo``) and the benchmark scripts.

Calibrated on the built-in benchmark (see BENCHMARKS.md for the trials): a tiny timm ResNet from scratch at 32 px,
crop + flip augmentation and weight decay for every method, models chosen on validation worst-group accuracy.
"""

BUILTIN_DATA = {"batch_size": 128, "image_size": 32, "augment": "crop_flip"}

BUILTIN_ERM = {
    "backbone": "test_resnet",
    "epochs": 12,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "selection": "val_wga",
}

BUILTIN_ORACLE = {**BUILTIN_ERM, "sampling": "group_balanced"}

BUILTIN_SEBRA = {
    "backbone": "test_resnet",
    # Stage 1
    "beta_inv": 0.7,
    "p_critical": 0.75,
    "max_steps": 20,
    "rank_optimizer": "adam",
    "rank_lr": 5e-5,
    "rank_weight_decay": 0.0,
    "scoring": "full",
    "unranked": "last",
    # Stage 2
    "epochs": 12,
    "gap": 1,
    "temperature": 0.1,
    "ce_weight": 1.0,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "selection": "val_wga",
}
