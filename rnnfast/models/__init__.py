"""Keras' model workflow over rnnfast's layers: ``Sequential`` (``compile``, ``fit``,
``evaluate``, ``predict``, ``summary``, ``save``), ``load_model``, Keras-style layers
(``rnnfast.models.layers``) and callbacks (``rnnfast.models.callbacks``)."""
from rnnfast.models import callbacks, layers
from rnnfast.models.callbacks import Callback, EarlyStopping, History, LambdaCallback
from rnnfast.models.saving import load_model, save_model
from rnnfast.models.sequential import Sequential

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "Sequential",
    "callbacks",
    "layers",
    "load_model",
    "save_model",
]
