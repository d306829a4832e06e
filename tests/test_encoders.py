"""Encoders, projection heads and memories."""
import pytest
import torch

from iconlearn.nn.encoders import ContrastiveModel, ProjectionHead, SmallResNet, feature_dim
from iconlearn.nn.memory import MemoryBank, Queue


def test_resnet18_has_the_cifar_parameter_count():
    # CIFAR ResNet-18 without its 10-class fc: 11,173,962 - 5,130
    net = SmallResNet(3, width=64, blocks=(2, 2, 2, 2))
    assert sum(p.numel() for p in net.parameters()) == 11_168_832 and net.out_dim == 512


@pytest.mark.parametrize("hw,c,stem", [(28, 1, 1), (32, 3, 1), (28, 1, 2)])
def test_small_resnet_shapes(hw, c, stem):
    net = SmallResNet(c, width=4, blocks=(1, 1, 1), norm="group", stem_stride=stem)
    out = net(torch.rand(2, c, hw, hw))
    assert out.shape == (2, 16) and net.out_dim == 16 and feature_dim(net, (c, hw, hw)) == 16


def test_bad_encoder_arguments():
    with pytest.raises(ValueError, match="blocks"):
        SmallResNet(1, 4, blocks=())
    with pytest.raises(ValueError, match="norm"):
        SmallResNet(1, 4, norm="layer")
    with pytest.raises(ValueError, match="stem_stride"):
        SmallResNet(1, 4, stem_stride=3)
    with pytest.raises(ValueError, match="layers"):
        ProjectionHead(4, 8, 2, layers=0)
    with pytest.raises(ValueError, match=r"\(B x D\) features"):
        feature_dim(torch.nn.Identity(), (1, 4, 4))


def test_projection_head_and_model():
    head = ProjectionHead(8, 16, 4, layers=3)
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU",
                                                "Linear"]
    assert isinstance(ProjectionHead(8, 16, 4, layers=1)[0], torch.nn.Linear) and len(ProjectionHead(8, 16, 4, 1)) == 1
    m = ContrastiveModel(torch.nn.Flatten(), ProjectionHead(16, 8, 4), ProjectionHead(4, 8, 4))
    x = torch.rand(3, 1, 4, 4)
    assert m.features(x).shape == (3, 16) and m(x).shape == (3, 4) and m.predict(m(x)).shape == (3, 4)
    assert torch.equal(ContrastiveModel(torch.nn.Flatten(), torch.nn.Identity()).predict(x), x)


def test_queue_is_fifo_and_round_trips():
    q = Queue(5, 2)
    assert q.get().shape == (0, 2)
    q.push(torch.arange(6.0).view(3, 2))
    assert torch.equal(q.get(), torch.arange(6.0).view(3, 2))
    q.push(torch.arange(6.0, 12.0).view(3, 2))  # rows 3, 4 fill, row 5 overwrites the oldest
    rows = {tuple(r.tolist()) for r in q.get()}
    assert len(q.get()) == 5 and (0.0, 1.0) not in rows and (10.0, 11.0) in rows
    q.push(torch.arange(100.0, 120.0).view(10, 2))  # more than the queue: the last 5 stay
    assert {tuple(r.tolist()) for r in q.get()} == {(110.0 + 2 * i, 111.0 + 2 * i) for i in range(5)}
    q2 = Queue(5, 2)
    q2.load_state_dict(q.state_dict())
    assert torch.equal(q2.get(), q.get()) and int(q2.ptr) == int(q.ptr)
    with pytest.raises(ValueError, match="width"):
        q.push(torch.zeros(2, 3))


def test_memory_bank_momentum_update():
    bank = MemoryBank(4, 3, momentum=0.5)
    old = bank.get().clone()
    z = torch.nn.functional.normalize(torch.rand(2, 3), dim=1)
    bank.update(torch.tensor([1, 3]), z)
    ref = torch.nn.functional.normalize(0.5 * old[[1, 3]] + 0.5 * z, dim=1)
    torch.testing.assert_close(bank.get()[[1, 3]], ref)
    assert torch.equal(bank.get()[[0, 2]], old[[0, 2]])
    with pytest.raises(ValueError, match="momentum"):
        MemoryBank(4, 3, momentum=2.0)
