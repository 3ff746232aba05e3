"""The CPU convolution paths (oneDNN Conv3d, pointwise matrix products) equal torch's, forward and backward."""

from __future__ import annotations

import torch

from evstereo.search.cells import upsample_nearest
from evstereo.snn.conv import Conv2d, Conv3d


def _same_values_and_gradients(ours, ref, shape, tol):
    """``ours`` (weights copied into ``ref``) gives ref's output and gradients on a random input."""
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = ours(x), ref(x2)
    assert y.is_contiguous()
    torch.testing.assert_close(y, y2, atol=tol, rtol=tol)
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, atol=tol, rtol=tol)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=10 * tol, rtol=tol)


def test_matches_torch_conv3d_values_and_gradients():
    torch.manual_seed(0)
    for cin, cout, stride, bias in [(6, 6, 1, False), (8, 12, 2, True), (30, 4, 1, True)]:
        _same_values_and_gradients(Conv3d(cin, cout, 3, stride, 1, bias=bias),
                                   torch.nn.Conv3d(cin, cout, 3, stride, 1, bias=bias), (2, cin, 6, 10, 12), 1e-4)


def test_pointwise_convs_take_the_matrix_product_and_match_torch():
    torch.manual_seed(1)
    for conv_cls, ref_cls, shape in [(Conv2d, torch.nn.Conv2d, (3, 7, 9, 11)), (Conv3d, torch.nn.Conv3d, (2, 7, 4, 6, 5))]:
        for bias in (False, True):
            _same_values_and_gradients(conv_cls(7, 5, 1, bias=bias), ref_cls(7, 5, 1, bias=bias), shape, 1e-5)
    # strided or padded 1x1 convs are not pointwise: the ordinary path, same result
    ours, ref = Conv2d(4, 3, 1, stride=2, padding=1), torch.nn.Conv2d(4, 3, 1, stride=2, padding=1)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(ours(x), ref(x))


def test_nearest_upsampling_by_broadcast_equals_interpolate():
    for shape, size in [((2, 3, 6, 44, 58), (12, 88, 116)), ((2, 3, 5, 7), (10, 21)), ((1, 2, 5, 7), (11, 14)),
                        ((1, 1, 3, 4, 5), (3, 8, 10))]:
        x = torch.randn(*shape)
        assert torch.equal(upsample_nearest(x, size), torch.nn.functional.interpolate(x, size=size, mode="nearest"))


def test_conv3d_compiles():
    """Inside torch.compile the oneDNN call (no shape function) gives way to F.conv3d."""
    torch.manual_seed(2)
    conv = Conv3d(4, 3, 3, 1, 1)
    x = torch.randn(1, 4, 3, 5, 6)
    torch.testing.assert_close(torch.compile(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_one_output_channel_by_depth_slices_matches_torch(monkeypatch):
    """At inference the read-out's Conv3d with one output channel runs as 2D convolutions of the
    depth slices: the same values as torch's, also at the depth borders and with 2D strides
    (and the same gradients, called directly); with gradients on, the layer keeps oneDNN's path."""
    from evstereo.snn import conv

    torch.manual_seed(3)
    used = []
    monkeypatch.setattr(conv, "depth_slices_conv", lambda *a, _f=conv.depth_slices_conv: used.append(1) or _f(*a))
    for cin, k, stride, pad, bias, shape in [(12, 3, 1, 1, True, (2, 12, 6, 10, 12)),
                                             (5, 3, 1, 1, False, (1, 5, 2, 7, 9)),
                                             (4, (5, 3, 3), (1, 2, 2), (2, 1, 1), True, (1, 4, 7, 9, 8)),
                                             (3, 3, 1, 1, True, (1, 3, 1, 5, 5))]:
        ours, ref = Conv3d(cin, 1, k, stride, pad, bias=bias), torch.nn.Conv3d(cin, 1, k, stride, pad, bias=bias)
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(*shape)
        with torch.no_grad():
            n = len(used)
            torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)
            assert len(used) == n + 1
        n = len(used)
        _same_values_and_gradients(ours, ref, shape, 1e-4)  # training: oneDNN's kernel
        assert len(used) == n
        xg = x.clone().requires_grad_(True)
        y = conv.depth_slices_conv(xg, ours.weight, ours.bias, ours.stride, ours.padding, ours.dilation)
        y.sum().backward()
        xr = x.clone().requires_grad_(True)
        ref(xr).sum().backward()
        torch.testing.assert_close(xg.grad, xr.grad, atol=1e-4, rtol=1e-4)


def test_upsampling_resample_runs_its_pointwise_layer_first_at_inference_with_the_same_spikes():
    from evstereo.search.cells import Neurons, Resample
    from evstereo.snn import EnergyMeter

    torch.manual_seed(0)
    for dim, x in ((3, torch.rand(1, 1, 6, 3, 5, 7)), (2, torch.rand(2, 1, 6, 5, 7))):
        x = (x > 0.6).float()
        size = tuple(2 * s for s in x.shape[-dim:])
        up = Resample(6, 4, 1, 0, dim, Neurons(None, "matching")).eval()
        with torch.no_grad():
            up.layers[0].synapse[1].running_mean.uniform_(-0.2, 0.2)  # a BN that is not the identity
            fast = up(x, size)
            assert up._pointwise_at_inference()  # the shortcut was taken ...
            with EnergyMeter(up).recording() as rec:  # ... but not where a hook sees the layer
                assert not up._pointwise_at_inference()
                plain = up(x, size)
        assert torch.equal(fast, plain) and fast.shape[-dim:] == size and 0 < fast.mean() < 1
        # counted at the upsampled size, as the network is defined: each input spike, copied to
        # 2**dim positions, reaches 4 output channels
        assert rec.report(x.shape[0])["layers"][0]["sops"] == x.sum().item() * 2**dim * 4 / x.shape[0]
        up.train()
        assert not up._pointwise_at_inference()  # training keeps the layer at the fine size


def test_derived_cell_runs_its_edges_directly_at_inference_with_the_same_spikes():
    """The inference path of a derived cell (no per-node concatenation, the edges that read one
    state as one stacked convolution, a node of two convolutions of different states as one
    convolution of both) gives the spikes of the path as defined, bit for bit here."""
    from evstereo.search.cells import Cell, Neurons
    from evstereo.search.genotypes import CellGenotype
    from evstereo.snn import EnergyMeter
    from evstereo.snn.conv import stacked_conv, summed_conv
    from evstereo.snn.layers import folded_for_inference

    # state 1 feeds two spiking edges (nodes 0 and 1) and a skip edge: the shipped matching cell
    genotype = CellGenotype.from_data([[[0, "snn_b5"], [1, "snn_b5"]], [[0, "skip_connect"], [1, "snn_b3"]],
                                       [[2, "snn_b5"], [3, "snn_b3"]]])
    torch.manual_seed(0)
    for dim, shape in ((3, (1, 1, 8, 4, 6, 7)), (2, (2, 1, 8, 6, 7))):
        cell = Cell(genotype, 8, 8, 0, 0, 0, 4, dim, Neurons(None, "matching")).eval()
        for m in cell.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)  # BNs that are not the identity
        s0, s1 = ((torch.rand(shape) > 0.6).float() for _ in range(2))
        size = shape[-dim:]
        for net, summed in ((cell, set()), (folded_for_inference(cell), {2})):
            # folded, node 2's edges are two lone convolutions of states 2 and 3: one summed convolution
            assert net._summed_nodes() == summed
            with torch.no_grad():
                assert net._direct_at_inference()
                direct = net(s0, s1, size)
                with EnergyMeter(net).recording():  # a hook on the edges: the path as defined
                    assert not net._direct_at_inference()
                    plain = net(s0, s1, size)
            assert torch.equal(direct, plain) and 0 < direct.mean() < 1
        cell.train()
        assert not cell._direct_at_inference()
    convs = [torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Conv2d(3, 5, 3, padding=1)]
    x = torch.rand(2, 3, 6, 7)
    with torch.no_grad():
        for got, conv in zip(stacked_conv(convs, x), convs):
            torch.testing.assert_close(got, conv(x))
    assert stacked_conv([convs[0], torch.nn.Conv2d(3, 2, 1)], x) is None  # other kernel sizes: not stacked
    assert stacked_conv(convs[:1], x) is None
    assert stacked_conv([torch.nn.Conv2d(3, 2, 1), torch.nn.Conv2d(3, 2, 1)], x) is None  # 1x1: their own path
    # summed: the convolutions of different inputs added up, as one convolution of the stacked inputs
    convs = [torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.Conv3d(2, 4, 3, padding=1, bias=False)]
    xs = [torch.rand(1, 3, 4, 6, 7), torch.rand(1, 2, 4, 6, 7)]
    with torch.no_grad():
        torch.testing.assert_close(summed_conv(convs, xs), convs[0](xs[0]) + convs[1](xs[1]))
    assert summed_conv([convs[0], torch.nn.Conv3d(2, 5, 3, padding=1)], xs) is None  # other widths of output
    assert summed_conv([convs[0], torch.nn.Conv3d(2, 4, 3, padding=2)], xs) is None  # other padding
    assert summed_conv(convs[:1], xs[:1]) is None
