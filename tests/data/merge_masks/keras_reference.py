# Prints the Keras 3 values and masks tests/merge_masks_test.cc checks (Keras 3.15.1 + jax):
#   KERAS_BACKEND=jax python tests/data/merge_masks/keras_reference.py
import os; os.environ["KERAS_BACKEND"]="jax"
import numpy as np, keras
from keras import layers
x1 = np.array([[[1,2],[0,0],[3,-1]],[[0,0],[0,0],[5,6]]], np.float32)
x2 = np.array([[[4,-2],[7,8],[0,0]],[[1,1],[0,0],[-2,9]]], np.float32)
a = layers.Masking(0.0)(x1); b = layers.Masking(0.0)(x2)
print("mask a", np.asarray(a._keras_mask).astype(int).tolist(), "mask b", np.asarray(b._keras_mask).astype(int).tolist())
for L in [layers.Add, layers.Subtract, layers.Average, layers.Maximum, layers.Minimum, layers.Multiply]:
    y = L()([a, b]); m = getattr(y, "_keras_mask", None)
    print(L.__name__, np.asarray(y).tolist(), None if m is None else np.asarray(m).astype(int).tolist())
    y = L()([a, x2]); m = getattr(y, "_keras_mask", None)
    print(L.__name__, "second unmasked", np.asarray(y).tolist(), None if m is None else np.asarray(m).astype(int).tolist())
for axis in [-1, 1]:
    for pair in [(a,b),(a,x2)]:
        y = layers.Concatenate(axis=axis)(list(pair)); m = getattr(y, "_keras_mask", None)
        print("Concatenate", axis, None if m is None else np.asarray(m).astype(int).tolist())
