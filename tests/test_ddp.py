"""The DistributedDataParallel path: two CPU processes on the gloo backend, as torchrun starts them."""
import os
import socket

import pytest
import torch.multiprocessing as mp

from helpers import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from mobilefer.engine.train import train

    result = train(tiny_config(data, out, epochs=2))
    (out / f"rank{rank}.done").write_text(str(len(result.history)))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_training(folder_data, tmp_path):
    out = tmp_path / "ddp"
    mp.start_processes(_worker, args=(2, _free_port(), str(folder_data), out), nprocs=2, join=True, start_method="spawn")
    assert (out / "rank0.done").read_text() == "2" and (out / "rank1.done").read_text() == "2"
    assert (out / "best.safetensors").is_file()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3
