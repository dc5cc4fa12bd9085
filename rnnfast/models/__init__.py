"""Keras' model workflow over rnnfast's layers: ``Sequential`` (``compile``, ``fit``,
``evaluate``, ``predict``, ``summary``, ``save``), ``load_model``, Keras-style layers
(``rnnfast.models.layers``), callbacks (``rnnfast.models.callbacks``), Keras' optimisers and
learning-rate schedules (``rnnfast.models.optimizers``) and ``set_keras_weights`` (Keras'
``get_weights()`` lists into these layers)."""
from rnnfast.models import callbacks, layers, mixed_precision, optimizers
from rnnfast.models.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from rnnfast.models.checkpointing import BackupAndRestore, ModelCheckpoint
from rnnfast.models.keras_weights import keras_recurrent_weights, set_keras_weights
from rnnfast.models.saving import load_model, save_model
from rnnfast.models.sequential import Sequential

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "Sequential",
    "TerminateOnNaN",
    "callbacks",
    "keras_recurrent_weights",
    "layers",
    "load_model",
    "mixed_precision",
    "optimizers",
    "save_model",
    "set_keras_weights",
]
