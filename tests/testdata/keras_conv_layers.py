# Generates the Keras 3 reference outputs in tests/conv_layers_test.cc (kKeras...): each layer
# built with Keras's defaults except where named, its weights and input filled by the formulas
# below (the test fills Kiln's the same way), and the output printed as a C++ initializer.
# Run: KERAS_BACKEND=jax python tests/testdata/keras_conv_layers.py  (Keras 3.15.1)
import numpy as np
import keras


def fill(shape, a, b):
    n = int(np.prod(shape))
    return np.sin(a * np.arange(n) + b).reshape(shape).astype("float32")


def literal(v):
    text = f"{v:.6g}"
    return text + ("f" if any(ch in text for ch in ".e") else ".f")


def run(name, layer, x_shape):
    x = fill(x_shape, 0.37, 0.1)
    layer.build(x_shape)
    for k, w in enumerate(layer.weights):
        w.assign(fill(w.shape, 0.23 + 0.11 * k, 0.5 * k))
    y = np.asarray(layer(x))
    print(f"// {name}: {layer.count_params()} parameters, output {list(y.shape)}")
    print(f"const std::vector<float> kKeras{name} = {{" + ", ".join(literal(v) for v in y.ravel()) + "};")


run("DepthwiseConv2D", keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=(1, 2)), (1, 4, 5, 3))
run("SeparableConv2D", keras.layers.SeparableConv2D(4, (2, 3), depth_multiplier=2, activation="relu"), (1, 4, 5, 3))
run("Conv1D", keras.layers.Conv1D(3, 3, padding="causal", dilation_rate=2), (2, 6, 2))
