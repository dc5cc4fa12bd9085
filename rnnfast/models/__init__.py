"""Keras' model workflow over rnnfast's layers: ``Sequential`` and the functional ``Model``
with ``Input`` (``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``, ``save``),
``load_model``, merge layers (``rnnfast.models.merging``), Keras-style layers
(``rnnfast.models.layers``), callbacks (``rnnfast.models.callbacks``), Keras' optimisers and
learning-rate schedules (``rnnfast.models.optimizers``) and ``set_keras_weights`` (Keras'
``get_weights()`` lists into these layers)."""
from rnnfast.models import callbacks, layers, merging, optimizers
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
from rnnfast.models.functional import Input, KerasTensor, Model
from rnnfast.models.keras_weights import keras_recurrent_weights, set_keras_weights
from rnnfast.models.saving import load_model, save_model
from rnnfast.models.sequential import Sequential

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "Input",
    "KerasTensor",
    "LambdaCallback",
    "LearningRateScheduler",
    "Model",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "Sequential",
    "TerminateOnNaN",
    "callbacks",
    "keras_recurrent_weights",
    "layers",
    "load_model",
    "merging",
    "optimizers",
    "save_model",
    "set_keras_weights",
]
