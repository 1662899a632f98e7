#!/usr/bin/env python3
"""Export a PyTorch model to safetensors (and an ftune config) for `ftune`.

Writes the state_dict of an nn.Module, or of a state_dict saved with torch.save
(.pt/.pth), as a safetensors file: written here in plain Python (8-byte
little-endian header length, JSON header, raw little-endian data), so the
`safetensors` package is not needed. Tensor names, shapes and dtypes are kept
(float32/float16/bfloat16/float64 are all read by ftune).

For a model whose forward is a chain of supported layers (an nn.Sequential,
nested ones included, or a module whose forward torch.fx can trace into such a
chain, e.g. conv -> F.relu -> ... -> torch.flatten -> linear), it also writes an
ftune config: model.input (from --input-shape), model.layers, model.preprocess
(from --scale/--mean/--std/--layout) and pretrained = { file; map } so that
`ftune train` or `ftune import safetensors` reads the tensors by their PyTorch
names.

Supported layers: Conv2d (square kernel/stride/padding, no dilation or groups),
Linear, ReLU, LeakyReLU, GELU, Tanh, Sigmoid, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d(1), Flatten, Dropout, BatchNorm1d, BatchNorm2d, Identity;
functional relu/gelu/tanh/sigmoid/leaky_relu/dropout/max_pool2d/avg_pool2d,
torch.flatten(x, 1), x.view(x.size(0), -1) / x.reshape(...) / x.flatten(1); a
final (log_)softmax is dropped (ftune's loss applies softmax).

Examples:
  # a model defined in a Python file (class or factory), random or trained weights
  tools/torch_export.py --module mynet.py --class Net --weights net.pt \\
      --input-shape 1,28,28 --mean 0.1307 --std 0.3081 -o net.safetensors --config net.cfg
  # a bare state_dict: tensors only (write the config by hand, see docs/import-export.md)
  tools/torch_export.py --state-dict net.pt -o net.safetensors

Also usable as a module: write_safetensors(path, tensors, metadata),
read_safetensors(path) -> (dict of torch tensors, metadata), ftune_config(...).
"""

import argparse
import collections
import importlib.util
import json
import os
import re
import struct
import sys

DTYPES = {}  # torch dtype -> safetensors name, filled lazily (torch imported on use)


def _torch():
    import torch  # noqa: PLC0415 (imported late so --help works without torch)

    if not DTYPES:
        DTYPES.update(
            {
                torch.float32: "F32",
                torch.float16: "F16",
                torch.bfloat16: "BF16",
                torch.float64: "F64",
                torch.int64: "I64",
                torch.int32: "I32",
                torch.int16: "I16",
                torch.int8: "I8",
                torch.uint8: "U8",
                torch.bool: "BOOL",
            }
        )
    return torch


# ---- safetensors ---------------------------------------------------------------------------


def _tensor_bytes(t):
    """Raw little-endian bytes of a contiguous CPU tensor."""
    torch = _torch()
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret as int16
        arr = t.view(torch.int16).numpy()
    else:
        arr = t.numpy()
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.byteswap().newbyteorder()
    return arr.tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (in the given order) with optional string metadata,
    to a temporary file that is renamed into place."""
    torch = _torch()
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: not a tensor ({type(t).__name__})")
        if t.dtype not in DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} has no safetensors equivalent here")
        data = _tensor_bytes(t)
        header[name] = {
            "dtype": DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)  # data starts 8-byte aligned
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path):
    """Reads a safetensors file into ({name: torch tensor}, metadata dict)."""
    torch = _torch()
    import numpy as np  # noqa: PLC0415

    np_types = {
        "F32": np.float32,
        "F16": np.float16,
        "F64": np.float64,
        "I64": np.int64,
        "I32": np.int32,
        "I16": np.int16,
        "I8": np.int8,
        "U8": np.uint8,
        "BOOL": np.bool_,
        "BF16": np.int16,
    }
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100_000_000:
            raise ValueError(f"{path}: header length {n} is too large")
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = collections.OrderedDict()
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=np.dtype(np_types[e["dtype"]]).newbyteorder("<"))
        t = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
        if e["dtype"] == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t.reshape(e["shape"])
    return out, meta


# ---- loading the model -------------------------------------------------------------------------


def load_module(py_file, name, args_json):
    """Instantiates `name` (a class or factory) from a Python file."""
    spec = importlib.util.spec_from_file_location("torch_export_user_module", py_file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"torch_export: cannot load {py_file}")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(py_file)))
    spec.loader.exec_module(mod)
    if not hasattr(mod, name):
        raise SystemExit(f"torch_export: {py_file} defines no '{name}'")
    kwargs = json.loads(args_json) if args_json else {}
    return getattr(mod, name)(**kwargs)


def load_state(path):
    """A state_dict (or a pickled nn.Module) from torch.save."""
    torch = _torch()
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        return obj, obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        tensors = collections.OrderedDict(
            (k, v) for k, v in obj.items() if isinstance(v, torch.Tensor)
        )
        if not tensors:
            raise SystemExit(f"torch_export: {path} holds no tensors")
        # DataParallel / DistributedDataParallel save "module." prefixes
        if all(k.startswith("module.") for k in tensors):
            tensors = collections.OrderedDict((k[7:], v) for k, v in tensors.items())
        return None, tensors
    raise SystemExit(f"torch_export: {path} holds a {type(obj).__name__}, not a state_dict")


# ---- ftune config --------------------------------------------------------------------------------


class Unsupported(Exception):
    pass


def _pair(v, what, mod):
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise Unsupported(f"{mod}: {what} {tuple(v)} is not square (ftune needs equal sides)")
        return int(v[0])
    return int(v)


def _layer_of_module(path, m):
    """(kind, keys) for a module, None to skip it."""
    nn = _torch().nn
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or _pair(m.dilation, "dilation", path) != 1:
            raise Unsupported(f"{path}: Conv2d with groups or dilation is not supported")
        if m.padding_mode != "zeros":
            raise Unsupported(f"{path}: Conv2d padding_mode '{m.padding_mode}' is not supported")
        k = _pair(m.kernel_size, "kernel_size", path)
        s = _pair(m.stride, "stride", path)
        if m.padding == "same":
            if s != 1 or k % 2 == 0:
                raise Unsupported(f"{path}: padding='same' needs stride 1 and an odd kernel")
            p = k // 2
        elif m.padding == "valid":
            p = 0
        else:
            p = _pair(m.padding, "padding", path)
        keys = {"filters": m.out_channels, "kernel": k}
        if s != 1:
            keys["stride"] = s
        if p:
            keys["padding"] = p
        if m.bias is None:
            keys["bias"] = False
        return "conv2d", keys
    if isinstance(m, nn.Linear):
        keys = {"units": m.out_features}
        if m.bias is None:
            keys["bias"] = False
        return "dense", keys
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not m.track_running_stats:
            raise Unsupported(f"{path}: BatchNorm without running statistics is not supported")
        if m.momentum is None:
            raise Unsupported(f"{path}: BatchNorm momentum=None (cumulative) is not supported")
        keys = {}
        if abs(m.momentum - 0.1) > 1e-12:
            keys["momentum"] = float(m.momentum)
        if abs(m.eps - 1e-5) > 1e-15:
            keys["eps"] = float(m.eps)
        if not m.affine:
            keys["affine"] = False
        return "batchnorm", keys
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        avg = isinstance(m, nn.AvgPool2d)
        if m.ceil_mode:
            raise Unsupported(f"{path}: ceil_mode=True is not supported")
        if not avg and _pair(m.dilation, "dilation", path) != 1:
            raise Unsupported(f"{path}: MaxPool2d dilation is not supported")
        if avg and (not m.count_include_pad or m.divisor_override is not None):
            raise Unsupported(f"{path}: AvgPool2d needs count_include_pad=True, no divisor_override")
        k = _pair(m.kernel_size, "kernel_size", path)
        s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", path)
        p = _pair(m.padding, "padding", path)
        keys = {"size": k}
        if s != k:
            keys["stride"] = s
        if p:
            keys["padding"] = p
        return ("avgpool2d" if avg else "maxpool2d"), keys
    if isinstance(m, nn.AdaptiveAvgPool2d):
        if m.output_size not in (1, (1, 1), [1, 1]):
            raise Unsupported(f"{path}: AdaptiveAvgPool2d needs output_size 1")
        return "global_avgpool", {}
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise Unsupported(f"{path}: Flatten needs start_dim=1, end_dim=-1")
        return "flatten", {}
    if isinstance(m, nn.Dropout):
        return "dropout", {"rate": float(m.p)}
    if isinstance(m, nn.ReLU):
        return "relu", {}
    if isinstance(m, nn.LeakyReLU):
        return "leaky_relu", {"slope": float(m.negative_slope)}
    if isinstance(m, nn.GELU):
        return "gelu", {"approximate": getattr(m, "approximate", "none")}
    if isinstance(m, nn.Tanh):
        return "tanh", {}
    if isinstance(m, nn.Sigmoid):
        return "sigmoid", {}
    if isinstance(m, nn.Identity):
        return None
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return "softmax", {}
    raise Unsupported(f"{path}: {type(m).__name__} is not supported by ftune")


def _layer_of_function(node):
    """(kind, keys) for a call_function / call_method node, None to skip."""
    torch = _torch()
    F = torch.nn.functional
    t = node.target
    args, kw = node.args, node.kwargs
    if t in (F.relu, torch.relu) or t == "relu":
        return "relu", {}
    if t in (torch.tanh, F.tanh) or t == "tanh":
        return "tanh", {}
    if t in (torch.sigmoid, F.sigmoid) or t == "sigmoid":
        return "sigmoid", {}
    if t is F.gelu:
        return "gelu", {"approximate": kw.get("approximate", "none")}
    if t is F.leaky_relu:
        slope = args[1] if len(args) > 1 else kw.get("negative_slope", 0.01)
        return "leaky_relu", {"slope": float(slope)}
    if t is F.dropout:
        p = args[1] if len(args) > 1 else kw.get("p", 0.5)
        return "dropout", {"rate": float(p)}
    if t in (F.max_pool2d, F.avg_pool2d):
        k = args[1] if len(args) > 1 else kw["kernel_size"]
        s = args[2] if len(args) > 2 else kw.get("stride", None)
        p = args[3] if len(args) > 3 else kw.get("padding", 0)
        k = _pair(k, "kernel_size", node.name)
        s = k if s in (None, []) else _pair(s, "stride", node.name)
        keys = {"size": k}
        if s != k:
            keys["stride"] = s
        if _pair(p, "padding", node.name):
            keys["padding"] = _pair(p, "padding", node.name)
        return ("maxpool2d" if t is F.max_pool2d else "avgpool2d"), keys
    if t is torch.flatten or t in ("flatten", "view", "reshape") or t is torch.reshape:
        # x.flatten(1), torch.flatten(x, 1), x.view(x.size(0), -1), ...: a flatten
        # when it keeps the batch and gives one feature dimension (the shapes
        # of a run with batch 2 tell)
        meta = node.meta.get("tensor_meta")
        src = node.args[0].meta.get("tensor_meta") if node.args else None
        if meta is None or src is None or len(meta.shape) != 2 or meta.shape[0] != src.shape[0]:
            raise Unsupported(f"{node.name}: {t} is supported only as a flatten to [batch, features]")
        return "flatten", {}
    if t in (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax) or t in (
        "softmax",
        "log_softmax",
    ):
        return "softmax", {}
    if t in ("size", "dim") or t is getattr:
        return "ignore", {}
    raise Unsupported(f"{node.name}: {getattr(t, '__name__', t)} is not supported by ftune")


def layer_chain(model, input_shape):
    """[(module path or None, kind, keys)] of a chain-shaped model, via torch.fx
    (falls back to walking nested nn.Sequential)."""
    torch = _torch()
    try:
        from torch.fx.passes.shape_prop import ShapeProp  # noqa: PLC0415

        gm = torch.fx.symbolic_trace(model)
        ShapeProp(gm).propagate(torch.zeros(2, *input_shape))
    except Exception as e:  # noqa: BLE001 (any trace failure: try the plain walk)
        if isinstance(model, torch.nn.Sequential):
            return _sequential_chain(model, "")
        raise Unsupported(f"torch.fx cannot trace the model ({e}); use an nn.Sequential") from e
    modules = dict(model.named_modules())
    chain, cur = [], None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if cur is not None:
                raise Unsupported("the model takes more than one input")
            cur = node
            continue
        if node.op == "output":
            break
        if node.op == "get_attr":
            raise Unsupported(f"{node.target}: direct use of a parameter in forward")
        if node.op == "call_module":
            layer = _layer_of_module(node.target, modules[node.target])
            path = node.target
        else:
            layer = _layer_of_function(node)
            path = None
        if layer is not None and layer[0] == "ignore":
            continue  # x.size(0) for a view
        # the chain must be linear: each op consumes the previous one's output
        data_inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
        data_inputs = [a for a in data_inputs if a.op != "call_method" or a.target != "size"]
        if not data_inputs or data_inputs[0] is not cur:
            raise Unsupported(
                f"{node.name}: the model is not a plain chain of layers (branches or residual "
                "connections are not supported)"
            )
        cur = node
        if layer is not None:
            chain.append((path, layer[0], layer[1]))
    return chain


def _sequential_chain(seq, prefix):
    nn = _torch().nn
    chain = []
    for name, m in seq.named_children():
        path = f"{prefix}{name}"
        if isinstance(m, nn.Sequential):
            chain += _sequential_chain(m, path + ".")
            continue
        layer = _layer_of_module(path, m)
        if layer is not None:
            chain.append((path, layer[0], layer[1]))
    return chain


LIBCONFIG_NAME = re.compile(r"^[A-Za-z][-A-Za-z0-9_]*$")
SHORT = {
    "conv2d": "conv",
    "dense": "fc",
    "batchnorm": "bn",
    "maxpool2d": "pool",
    "avgpool2d": "avgpool",
    "global_avgpool": "gap",
    "flatten": "flatten",
    "dropout": "drop",
    "relu": "relu",
    "leaky_relu": "lrelu",
    "gelu": "gelu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}
HAS_PARAMS = ("conv2d", "dense", "batchnorm")


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r or "inf" in r or "nan" in r) else r + ".0"
    return json.dumps(v)


def _floats(v):
    return "[" + ", ".join(_value(float(x)) for x in v) + "]"


def ftune_config(chain, input_shape, weights, preprocess=None, data_train="data/train.h5"):
    """ftune config text for a layer chain. Layers keep their module's name when
    it is a plain identifier (burn's conv1, fc1); others get conv1, fc2, ...
    with pretrained.map naming their module."""
    if chain and chain[-1][1] == "softmax":
        chain = chain[:-1]
    for path, kind, _ in chain:
        if kind == "softmax":
            raise Unsupported(f"{path or 'softmax'}: softmax is only supported as the last layer")
    used, counters, rows, mapping = set(), collections.Counter(), [], collections.OrderedDict()
    taken = {p for p, _, _ in chain if p and LIBCONFIG_NAME.match(p)}
    for path, kind, keys in chain:
        if path and LIBCONFIG_NAME.match(path) and path not in used:
            name = path
        else:
            while True:
                counters[kind] += 1
                name = SHORT[kind] + ("" if kind == "flatten" and counters[kind] == 1 else
                                      str(counters[kind]))
                if name not in used and name not in taken:
                    break
            if path and kind in HAS_PARAMS:
                mapping[name] = path
        used.add(name)
        body = "".join(f" {k} = {_value(v)};" for k, v in keys.items())
        rows.append(f'    {{ name = "{name}"; type = "{kind}";{body} }}')
    pre = ""
    if preprocess:
        parts = []
        if preprocess.get("scale") is not None:
            parts.append(f"scale = {_value(float(preprocess['scale']))};")
        if preprocess.get("mean") is not None:
            parts.append(f"mean = {_floats(preprocess['mean'])};")
        if preprocess.get("std") is not None:
            parts.append(f"std = {_floats(preprocess['std'])};")
        if preprocess.get("layout"):
            parts.append(f"layout = {json.dumps(preprocess['layout'])};")
        if parts:
            pre = "  preprocess = { " + " ".join(parts) + " };\n"
    text = (
        "# Generated by tools/torch_export.py; edit data, freeze and train for fine-tuning.\n"
        f'data = {{ train = "{data_train}"; }};\n'
        "model = {\n"
        f"  input = [{', '.join(str(int(d)) for d in input_shape)}];\n"
        f"{pre}"
        "  layers = (\n" + ",\n".join(rows) + "\n  );\n};\n"
        "pretrained = {\n"
        f"  file = {json.dumps(weights)};\n"
    )
    if mapping:
        text += "  map = {\n"
        text += "".join(f"    {k} = {json.dumps(v)};\n" for k, v in mapping.items())
        text += "  };\n"
    text += "};\n"
    return text


# ---- command line --------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Supported layers") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = ap.add_argument_group("the model")
    src.add_argument("--module", metavar="FILE.py", help="Python file defining the model")
    src.add_argument("--class", dest="cls", metavar="NAME", help="class or factory in --module")
    src.add_argument("--args", metavar="JSON", help="keyword arguments for --class, as JSON")
    src.add_argument("--weights", metavar="FILE.pt", help="state_dict to load into --module")
    src.add_argument("--state-dict", metavar="FILE.pt", help="export this state_dict alone")
    ap.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    ap.add_argument("--config", metavar="OUT.cfg", help="also write an ftune config")
    ap.add_argument("--input-shape", metavar="C,H,W", help="per-sample input shape (for --config)")
    ap.add_argument("--scale", type=float, help="model.preprocess.scale")
    ap.add_argument("--mean", metavar="M[,M...]", help="model.preprocess.mean (per channel)")
    ap.add_argument("--std", metavar="S[,S...]", help="model.preprocess.std (per channel)")
    ap.add_argument("--layout", choices=("nchw", "nhwc"), help="model.preprocess.layout")
    ap.add_argument("--data", metavar="TRAIN.h5", default="data/train.h5", help="data.train")
    ap.add_argument(
        "--float32", action="store_true", help="convert floating tensors to float32 first"
    )
    a = ap.parse_args(argv)

    if bool(a.module) != bool(a.cls):
        ap.error("--module and --class go together")
    if not a.module and not a.state_dict:
        ap.error("give --module FILE.py --class NAME, or --state-dict FILE.pt")
    try:
        torch = _torch()
    except ImportError:
        sys.exit("torch_export: PyTorch is not installed for this Python")

    model = None
    if a.module:
        model = load_module(a.module, a.cls, a.args)
        if a.weights:
            model.load_state_dict(load_state(a.weights)[1])
        state = model.state_dict()
    else:
        model, state = load_state(a.state_dict)
    tensors = collections.OrderedDict()
    for k, v in state.items():
        if a.float32 and v.is_floating_point():
            v = v.float()
        tensors[k] = v
    write_safetensors(a.output, tensors, {"format": "pt"})
    print(f"wrote {a.output}: {len(tensors)} tensors")

    if a.config:
        if model is None:
            sys.exit("torch_export: --config needs the model (--module/--class or a pickled module)")
        if not a.input_shape:
            sys.exit("torch_export: --config needs --input-shape C,H,W (or F)")
        shape = [int(x) for x in a.input_shape.split(",")]
        model.eval()
        with torch.no_grad():  # the model must run on that shape
            model(torch.zeros(2, *shape))
        try:
            chain = layer_chain(model, shape)
        except Unsupported as e:
            sys.exit(f"torch_export: no ftune config: {e}")
        pre = {
            "scale": a.scale,
            "mean": [float(x) for x in a.mean.split(",")] if a.mean else None,
            "std": [float(x) for x in a.std.split(",")] if a.std else None,
            "layout": a.layout,
        }
        rel = os.path.relpath(a.output)
        try:
            text = ftune_config(chain, shape, rel, pre, a.data)
        except Unsupported as e:
            sys.exit(f"torch_export: no ftune config: {e}")
        with open(a.config, "w") as f:
            f.write(text)
        print(f"wrote {a.config}: {len(chain)} layers")


if __name__ == "__main__":
    main()
