"""The oneDNN Conv3d equals nn.Conv3d, forward and backward."""

from __future__ import annotations

import torch

from evstereo.snn.conv import Conv3d


def test_matches_torch_conv3d_values_and_gradients():
    torch.manual_seed(0)
    for cin, cout, stride, bias in [(6, 6, 1, False), (8, 12, 2, True), (30, 4, 1, True)]:
        ours = Conv3d(cin, cout, 3, stride, 1, bias=bias)
        ref = torch.nn.Conv3d(cin, cout, 3, stride, 1, bias=bias)
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(2, cin, 6, 10, 12, requires_grad=True)
        x2 = x.detach().clone().requires_grad_(True)
        y, y2 = ours(x), ref(x2)
        torch.testing.assert_close(y, y2, atol=1e-4, rtol=1e-4)
        g = torch.randn_like(y)
        y.backward(g)
        y2.backward(g)
        torch.testing.assert_close(x.grad, x2.grad, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-3, rtol=1e-4)
