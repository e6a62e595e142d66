"""Writes keras_reference.txt: Keras 3 (JAX backend) outputs of Conv2DTranspose, UpSampling2D
and Resizing on inputs both sides compute from a formula, so no input is stored.

Run: KERAS_BACKEND=jax /work/main/.venv-peers/bin/python make_keras_reference.py
Inputs: x[i] = sin(0.1 * i + 0.3) over the flattened NHWC input; kernel[i] = cos(0.37 * i)
over the flattened [kh, kw, filters, in] kernel; bias[i] = 0.1 * i - 0.2.
Each case is one line: name, then `|`, the output shape, `|`, the flattened output.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
import numpy as np


def seq(n, f):
    return np.array([f(i) for i in range(n)], dtype=np.float32)


def x_of(shape):
    return seq(int(np.prod(shape)), lambda i: np.sin(0.1 * i + 0.3)).reshape(shape)


lines = []


def emit(name, y):
    y = np.asarray(y, dtype=np.float64)
    lines.append(name + " | " + " ".join(str(d) for d in y.shape) + " | " + " ".join("%.9g" % v for v in y.ravel()))


# name, input shape, filters, kernel, strides, padding, output_padding, dilation
conv_cases = [
    ("ct_same_s2", (1, 4, 5, 3), 2, (3, 3), (2, 2), "same", None, (1, 1)),
    ("ct_valid_s23", (1, 4, 5, 3), 2, (3, 2), (2, 3), "valid", None, (1, 1)),
    ("ct_same_op11", (2, 3, 3, 2), 3, (3, 3), (2, 2), "same", (1, 1), (1, 1)),
    ("ct_valid_op21", (1, 3, 4, 2), 2, (2, 3), (3, 2), "valid", (2, 1), (1, 1)),
    ("ct_same_dil2", (1, 5, 5, 2), 2, (3, 3), (1, 1), "same", None, (2, 2)),
    ("ct_same_k1_s3", (1, 3, 3, 2), 2, (1, 1), (3, 3), "same", None, (1, 1)),
    ("ct_same_k4_op01", (1, 4, 4, 2), 2, (4, 4), (2, 2), "same", (0, 1), (1, 1)),
]
for name, shape, filters, kernel, strides, padding, op, dil in conv_cases:
    layer = keras.layers.Conv2DTranspose(filters, kernel, strides=strides, padding=padding, output_padding=op,
                                         dilation_rate=dil)
    layer.build(shape)
    kshape = (kernel[0], kernel[1], filters, shape[3])
    assert tuple(layer.kernel.shape) == kshape, layer.kernel.shape
    w = seq(int(np.prod(kshape)), lambda i: np.cos(0.37 * i)).reshape(kshape)
    b = seq(filters, lambda i: 0.1 * i - 0.2)
    layer.set_weights([w, b])
    emit(name, layer(x_of(shape)))

x = x_of((1, 3, 4, 2))
for name, h, w, interp in [("rs_bilinear_up", 7, 5, "bilinear"), ("rs_bilinear_down", 2, 3, "bilinear"),
                           ("rs_nearest_up", 6, 8, "nearest"), ("rs_nearest_down", 2, 3, "nearest"),
                           ("rs_nearest_odd", 5, 7, "nearest"), ("rs_bilinear_mixed", 2, 9, "bilinear")]:
    emit(name, keras.layers.Resizing(h, w, interpolation=interp)(x))
for name, size, interp in [("up_nearest_23", (2, 3), "nearest"), ("up_bilinear_23", (2, 3), "bilinear"),
                           ("up_bilinear_22", (2, 2), "bilinear")]:
    emit(name, keras.layers.UpSampling2D(size, interpolation=interp)(x))

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_reference.txt"), "w") as f:
    f.write("# Made by make_keras_reference.py with keras " + keras.__version__ + " (" + keras.backend.backend() + ")\n")
    f.write("\n".join(lines) + "\n")
