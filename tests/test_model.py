"""ALSNet matches the paper: sizes, shapes, initialisation and BatchNorm settings."""

import pytest
import torch

from alsnet.model.network import BN_EPS, BN_MOMENTUM, RECEPTIVE_FIELD, ALSNet, count_parameters, logits_to_proba


def test_binary_model_has_the_papers_parameter_and_buffer_counts():
    trainable, buffers = count_parameters(ALSNet(n_outputs=1))
    assert trainable == 85_249
    assert buffers == 576
    assert trainable + buffers == 85_825  # the reference Keras summary


def test_three_class_head_adds_only_the_extra_output_weights():
    trainable, buffers = count_parameters(ALSNet(n_outputs=3))
    assert trainable == 85_249 + 2 * (64 + 1)
    assert buffers == 576


@pytest.mark.parametrize("n_times", [RECEPTIVE_FIELD, 46, 1000, 23437])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_output_shape_for_any_length_at_least_the_receptive_field(n_times, n_outputs):
    model = ALSNet(n_outputs=n_outputs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, n_times))
    assert out.shape == (2, n_outputs)


def test_receptive_field_is_45_samples_and_shorter_input_fails():
    assert RECEPTIVE_FIELD == 45
    with pytest.raises(RuntimeError):
        ALSNet().eval()(torch.randn(1, 1, RECEPTIVE_FIELD - 1))


def test_feature_map_lengths_follow_valid_dilated_convolutions():
    model = ALSNet().eval()
    x = torch.randn(1, 1, 23437)
    lengths = []
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            if isinstance(layer, torch.nn.Conv1d):
                lengths.append((x.shape[-1], x.shape[1]))
    assert lengths == [(23427, 32), (23411, 64), (23393, 128)]


def test_batchnorm_uses_keras_defaults_and_follows_relu():
    model = ALSNet()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 4
    assert all(bn.momentum == BN_MOMENTUM == 0.01 and bn.eps == BN_EPS == 1e-3 for bn in bns)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv1d", "ReLU", "BatchNorm1d"] * 3


def test_initialisation_is_he_normal_for_convolutions_and_glorot_for_dense():
    torch.manual_seed(0)
    model = ALSNet()
    conv3 = model.features[6]
    fan_in = 64 * 7
    assert conv3.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5 * 0.88, rel=0.1)  # truncated at 2 sd
    assert conv3.bias.abs().sum() == 0
    dense = model.dense[0]
    limit = (6 / (128 + 64)) ** 0.5
    assert dense.weight.abs().max() <= limit and dense.bias.abs().sum() == 0


def test_probabilities_sum_to_one_for_binary_and_multiclass():
    p1 = logits_to_proba(torch.tensor([[0.0], [2.0]]))
    assert torch.allclose(p1.sum(-1), torch.ones(2)) and p1[0, 1] == 0.5
    p3 = logits_to_proba(torch.randn(4, 3))
    assert torch.allclose(p3.sum(-1), torch.ones(4))
