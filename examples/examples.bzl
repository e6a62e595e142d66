"""Every example program, in one list: it makes the cc_binary targets and the list that
examples_test runs (with --smoke), so an example cannot be built without being run.
examples_test also fails when an examples/*.cc with a main() is missing here."""

# name: the extra deps beyond //:kiln, :example_flags and //nn/applications.
EXAMPLES = {
    # Character-level transformer LM; its smoke run is compared with a PyTorch twin's losses.
    "char_lm": [],
    "custom_training_loop": [],
    # Data-parallel training on Open MPI (dist/): the example relaunches itself under mpirun.
    "distributed_custom_loop": ["//dist"],
    "distributed_fit": ["//dist"],
    "fashion_mnist_cnn": [],
    "fashion_mnist_mlp": [],
    "lstm_fashion_mnist": [],
    "mobilenet_v3_fashion_mnist": [
        "//quant",
        "//runtime_export",
        "//runtime_export/onnx",
    ],
    "quantize_with_accuracy_control": [
        "//quant",
        "//runtime_export",
        "//runtime_export/onnx",
    ],
    # Imports torchvision's resnet10 as torch.onnx.export wrote it (tests/data/foreign_onnx).
    "run_foreign_onnx": [
        "//quant",
        "//runtime_export",
        "//runtime_export/onnx",
    ],
    "trace_and_export": [
        "//runtime_export",
        "//runtime_export/onnx",
    ],
    "trainer_subclass": [],
    "vit_fashion_mnist": [
        "//quant",
        "//runtime_export",
        "//runtime_export/onnx",
    ],
}

# name: files an example reads (its default --model, say).
EXAMPLE_DATA = {
    "run_foreign_onnx": ["//tests/data/foreign_onnx:models"],
}

def example_binaries():
    for name, deps in EXAMPLES.items():
        native.cc_binary(
            name = name,
            srcs = [name + ".cc"],
            data = EXAMPLE_DATA.get(name, []),
            deps = [
                ":example_flags",
                "//:kiln",
                "//nn/applications",
            ] + deps,
        )
