"""
Checkpoints shaped as training frameworks write them, each wrapping one small CLIP-like state dict, for
test/training-checkpoints.test.ts: fairseq (argparse.Namespace in `args`; zip, and legacy with pickle protocols
2 and 1), PyTorch Lightning (a callback class as a dict key, AttributeDict, pathlib, datetime), MMEngine
(HistoryBuffer with numpy arrays), OmegaConf (DictConfig), a whole pickled model, and protocol 0 files.
The framework classes are stand-ins defined here under the frameworks' module names: what matters is how
pickle writes them, not their code. Usage: python3 training_checkpoints.py OUT_DIR (writes expected.json too).
"""
import sys, os, json, argparse, collections, datetime, pathlib
out = sys.argv[1]
sys.path.insert(0, os.path.join(out, 'mods'))
def mod(path, src):
    p = os.path.join(out, 'mods', path); os.makedirs(os.path.dirname(p), exist_ok=True)
    for d in range(1, path.count('/') + 1):
        init = os.path.join(out, 'mods', *path.split('/')[:d], '__init__.py')
        if not os.path.exists(init): open(init, 'w').close()
    open(p, 'w').write(src)
mod('pytorch_lightning/callbacks/model_checkpoint.py', 'class ModelCheckpoint:\n    def __init__(self): self.monitor = "val_loss"; self.best_model_path = "/ckpt/best.ckpt"\n')
mod('pytorch_lightning/utilities/parsing.py', 'class AttributeDict(dict):\n    pass\n')
mod('mmengine/logging/history_buffer.py', 'import numpy as np\nclass HistoryBuffer:\n    def __init__(self):\n        self.max_length = 1000000\n        self._log_history = np.array([0.5, 0.25])\n        self._count_history = np.array([1, 1])\n')
mod('omegaconf/dictconfig.py', 'class DictConfig:\n    def __init__(self, content): self._content = content; self._parent = None\n    def __getstate__(self): return {"_metadata": {"ref_type": object, "flags": {}}, "_parent": None, "_content": self._content}\n    def __setstate__(self, s): self.__dict__.update(s)\n')
import torch
from pytorch_lightning.callbacks.model_checkpoint import ModelCheckpoint
from pytorch_lightning.utilities.parsing import AttributeDict
from mmengine.logging.history_buffer import HistoryBuffer
from omegaconf.dictconfig import DictConfig

g = torch.Generator().manual_seed(0)
base = torch.randn(3, 4, generator=g)
sd = collections.OrderedDict()
sd['text_projection'] = torch.randn(4, 2, generator=g)
sd['token_embedding.weight'] = torch.randn(5, 4, generator=g).half()
sd['visual.proj'] = base.t()  # a transposed view: non-contiguous
sd['visual.conv1.weight'] = torch.randn(2, 3, 1, 1, generator=g)
sd['logit_scale'] = torch.tensor(4.6052)
expected = {k: v.float().flatten().tolist() for k, v in sd.items()}
shapes = {k: list(v.shape) for k, v in sd.items()}
json.dump({'values': expected, 'shapes': shapes}, open(os.path.join(out, 'expected.json'), 'w'))

args = argparse.Namespace(arch='clip_vit', lr=[0.001], data='/data', seed=1)
fairseq = {'args': args, 'cfg': None, 'model': sd,
           'optimizer_history': [{'criterion_name': 'CrossEntropyCriterion', 'optimizer_name': 'FairseqAdam', 'lr_scheduler_state': {'best': 1.5}, 'num_updates': 100}],
           'extra_state': {'epoch': 3, 'val_loss': 1.25, 'train_iterator': {'epoch': 3, 'iterations_in_epoch': 0, 'shuffle': True}},
           'last_optimizer_state': {'state': {0: {'step': 10, 'exp_avg': torch.zeros(2)}}, 'param_groups': [{'lr': 0.001, 'betas': (0.9, 0.98), 'params': [0]}]}}
torch.save(fairseq, os.path.join(out, 'fairseq.pt'))
torch.save(fairseq, os.path.join(out, 'fairseq-legacy-p2.pt'), _use_new_zipfile_serialization=False)
torch.save(fairseq, os.path.join(out, 'fairseq-legacy-p1.pt'), _use_new_zipfile_serialization=False, pickle_protocol=1)

lightning = {'epoch': 3, 'global_step': 1000, 'pytorch-lightning_version': '1.2.10',
             'callbacks': {ModelCheckpoint: {'monitor': 'val_loss', 'best_model_score': torch.tensor(0.25), 'best_model_path': '/ckpt/best.ckpt'}},
             'optimizer_states': [{'state': {}, 'param_groups': [{'lr': 0.001, 'params': [0, 1]}]}], 'lr_schedulers': [],
             'state_dict': collections.OrderedDict(('model.' + k, v) for k, v in sd.items()),
             'hparams_name': 'kwargs', 'hyper_parameters': AttributeDict(lr=0.001, backbone='ViT-B/32', log_dir=pathlib.PurePosixPath('/runs/1')),
             'saved_at': datetime.datetime(2023, 5, 1, 12, 0)}
torch.save(lightning, os.path.join(out, 'lightning.ckpt'))

mmengine = {'meta': {'mmengine_version': '0.7.4', 'epoch': 1, 'iter': 100, 'seed': 42,
                     'message_hub': {'log_scalars': {'train/loss': HistoryBuffer()}, 'runtime_info': {'iter': 100}}},
            'state_dict': sd, 'optimizer': {'state': {}, 'param_groups': []}}
torch.save(mmengine, os.path.join(out, 'mmengine.pth'))

omegaconf = {'state_dict': sd, 'hyper_parameters': {'cfg': DictConfig({'model': DictConfig({'name': 'ViT-B/32'}), 'lr': 0.001})}}
torch.save(omegaconf, os.path.join(out, 'omegaconf.ckpt'))

# A whole model pickled (torch.save(model)): refused, naming its class.
mod('clipmodels/model.py', 'import torch\nclass CLIP(torch.nn.Module):\n    def __init__(self):\n        super().__init__(); self.proj = torch.nn.Linear(2, 2)\n')
from clipmodels.model import CLIP
torch.save(CLIP(), os.path.join(out, 'whole-model.pt'))

# Protocol 0: without tensors torch reads it; with tensors not even torch can.
torch.save({'epoch': 3, 'name': 'caf\u00e9 \\ "x"\n', 'args': args, 'ratio': 0.5, 'big': 2**80, 'neg': -7, 'flags': (True, False, None), 'tags': {'a', 'b'}}, os.path.join(out, 'meta-p0.pt'), _use_new_zipfile_serialization=False, pickle_protocol=0)
torch.load(os.path.join(out, 'meta-p0.pt'))
torch.save(sd, os.path.join(out, 'sd-p0.pt'), _use_new_zipfile_serialization=False, pickle_protocol=0)
