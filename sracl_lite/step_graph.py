"""A whole training step replayed as one CUDA graph (TrainConfig.cuda_graph; the Speed section).

One SRA-CL step launches several hundred small kernels (gathers, augmentations, two encoder
layers forward and backward, three losses, the Adam update). Each launch costs the CPU a few
microseconds, more than most of these kernels run, so an eager step waits on Python. Captured
once, the same kernels replay from a single launch: the CPU only copies the next batch's prefix
indices into the graph's input and replays it.

What a captured step needs, and how the trainer provides it:
- fixed shapes: every full batch has the same size; the epoch's last, smaller batch runs eagerly;
- fixed addresses: data tables, parameters, gradients (zeroed in place, never set to None) and
  the Adam state (`capturable=True`, its step count on the GPU) keep their memory;
- no host synchronisation inside: the losses are summed into a device tensor;
- fresh randomness at every replay: dropout and augmentations draw from PyTorch's CUDA
  generator, whose offset a graph advances at each replay.
"""
import torch


class CapturedStep:
    """Calls `step(idx)` eagerly for the first `warmup` batches, then captures it and replays it.

    The warm-up steps run on a side stream, as CUDA graph capture requires: they create the
    optimizer state and let the libraries pick and allocate their kernels' workspaces.
    Every call is a real training step; capturing itself runs nothing, so the batch that
    triggers the capture is then replayed.
    """

    def __init__(self, step, warmup: int = 3):
        self.step, self.warmup = step, warmup
        self.graph, self.static_idx, self.eager_calls = None, None, 0

    def __call__(self, idx):
        if self.graph is None and self.eager_calls < self.warmup:
            self.eager_calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step(idx)
            torch.cuda.current_stream().wait_stream(side)
            return
        if self.graph is None:
            self.static_idx = idx.clone()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.step(self.static_idx)
        else:
            self.static_idx.copy_(idx)
        self.graph.replay()
