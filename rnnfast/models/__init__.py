"""Keras' model workflow over rnnfast's layers: ``Sequential`` (``compile``, ``fit``,
``evaluate``, ``predict``, ``summary``, ``save``), ``load_model``, Keras-style layers
(``rnnfast.models.layers``), callbacks (``rnnfast.models.callbacks``) and
``set_keras_weights`` (Keras' ``get_weights()`` lists into these layers)."""
from rnnfast.models import callbacks, layers
from rnnfast.models.callbacks import Callback, EarlyStopping, History, LambdaCallback
from rnnfast.models.checkpointing import BackupAndRestore, ModelCheckpoint
from rnnfast.models.keras_weights import keras_recurrent_weights, set_keras_weights
from rnnfast.models.saving import load_model, save_model
from rnnfast.models.sequential import Sequential

__all__ = [
    "BackupAndRestore",
    "Callback",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "ModelCheckpoint",
    "Sequential",
    "callbacks",
    "keras_recurrent_weights",
    "layers",
    "load_model",
    "save_model",
    "set_keras_weights",
]
