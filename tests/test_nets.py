"""Network sizes, shapes and size rules at the official defaults and at several options."""

from __future__ import annotations

import pytest
import torch

from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGGStyleDiscriminator
from ddnsr.nets.common import Conv2dSame, same_padding


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_at_defaults():
    assert count(RRDBNet()) == 16_697_987
    assert count(DegradationNet()) == 4_341_763


def test_rrdbnet_state_dict_naming():
    keys = set(RRDBNet(num_block=2).state_dict())
    for k in ("conv_first.weight", "body.0.rdb1.conv1.weight", "body.1.rdb3.conv5.bias", "conv_body.weight",
              "conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"):
        assert k in keys


@pytest.mark.parametrize("size", [(8, 8), (13, 21), (32, 17)])
@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_rrdbnet_shapes(size, scale):
    h, w = size
    if scale in (1, 2) and (h % (4 // scale) or w % (4 // scale)):
        pytest.skip("pixel-unshuffle variants need sizes divisible by their fold")
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale)
    with torch.no_grad():
        out = net(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, h * scale, w * scale)


@pytest.mark.parametrize("hw", [(32, 32), (64, 48), (128, 20)])
def test_degradation_shapes(hw):
    h, w = hw
    d = DegradationNet(filters=8, res_blocks=1)
    with torch.no_grad():
        out = d(torch.rand(2, 3, h, w), torch.rand(2, 3, h // 4, w // 4))
    assert out.shape == (2, 3, h // 4, w // 4)


def test_degradation_refuses_sizes_not_divisible_by_4():
    d = DegradationNet(filters=8, res_blocks=1)
    with pytest.raises(ValueError, match="not divisible by 4"):
        d(torch.rand(1, 3, 30, 32), torch.rand(1, 3, 7, 8))
    with pytest.raises(ValueError, match="reference"):
        d(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 16, 16))


def test_single_input_ignores_reference():
    d = DegradationNet(filters=8, res_blocks=1, input_type="single")
    hr = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = d(hr, torch.rand(1, 3, 8, 8))
        b = d(hr, None)
    torch.testing.assert_close(a, b)


def test_discriminator_shapes():
    assert VGGStyleDiscriminator(8, 5, 128)(torch.rand(3, 3, 128, 128)).shape == (3, 1)
    assert VGGStyleDiscriminator(16, 3, 32)(torch.rand(3, 3, 32, 32)).shape == (3, 1)
    with pytest.raises(ValueError, match="32x32"):
        VGGStyleDiscriminator(16, 3, 32)(torch.rand(1, 3, 64, 64))
    assert PatchGANDiscriminator(8)(torch.rand(2, 3, 64, 64)).shape == (2, 1, 8, 8)


def test_frozen_batchnorm_uses_moving_statistics_in_training():
    d = VGGStyleDiscriminator(8, 2, 32, bn_mode="frozen").train()
    x = torch.rand(4, 3, 32, 32)
    before = [b.clone() for b in d.buffers()]
    single = torch.cat([d(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(d(x), single)  # batch-independent
    assert all(torch.equal(a, b) for a, b in zip(before, d.buffers(), strict=True))
    db = VGGStyleDiscriminator(8, 2, 32, bn_mode="batch").train()
    db(x)
    assert any(not torch.equal(a, b) for a, b in zip(before, db.buffers(), strict=True))


def test_same_padding_matches_tensorflow_rule():
    assert same_padding(32, 4, 2) == (1, 1)
    assert same_padding(33, 4, 2) == (1, 2)
    assert same_padding(16, 4, 1) == (1, 2)
    conv = Conv2dSame(1, 1, 4, 2)
    assert conv(torch.rand(1, 1, 33, 32)).shape == (1, 1, 17, 16)


def test_keras_initialisation_is_glorot_with_zero_bias():
    net = RRDBNet(num_block=1)
    w = net.conv_first.weight
    limit = (6 / (3 * 9 + 64 * 9)) ** 0.5
    assert w.abs().max() <= limit and w.abs().max() > 0.8 * limit
    assert torch.count_nonzero(net.conv_first.bias) == 0
    esr = RRDBNet(num_block=1, init="esrgan")
    assert esr.body[0].rdb1.conv1.weight.std() < 0.1 * (2 / (64 * 9)) ** 0.5 * 1.5


def test_vgg_until_a_tap_gives_the_same_features_without_the_deeper_layers():
    from ddnsr.errors import SettingError
    from ddnsr.nets import VGG19Features

    torch.manual_seed(0)
    vgg = VGG19Features(("block5_conv4", "block3_conv4", "block2_conv2"), load=False)
    for conv in vgg.convs.values():
        torch.nn.init.normal_(conv.weight, std=0.05)
    x = torch.rand(2, 3, 32, 32)
    full = vgg(x)
    assert set(full) == {"block5_conv4", "block3_conv4", "block2_conv2"}
    calls = []
    hook = vgg.convs["block3_conv1"].register_forward_hook(lambda *a: calls.append(1))
    early = vgg(x, until="block2_conv2")
    hook.remove()
    assert set(early) == {"block2_conv2"} and not calls  # block 3 never ran
    torch.testing.assert_close(early["block2_conv2"], full["block2_conv2"], rtol=0, atol=0)
    torch.testing.assert_close(vgg(x, until="block3_conv4")["block3_conv4"], full["block3_conv4"], rtol=0, atol=0)
    with pytest.raises(SettingError, match="block4_conv1"):
        vgg(x, until="block4_conv1")
