using System.Globalization;
using System.Text;
using Orleans.Optim.Tensors;
using Razorvine.Pickle;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Razorvine pickler (protocol 2) that writes the tree of <see cref="PickleTreeBuilder"/> as torch 1.13's
/// <c>torch.save</c> pickles it: tensors as <c>_rebuild_tensor_v2</c> over a BINPERSID storage id, and
/// OrderedDicts as <c>collections.OrderedDict</c> with their <c>_metadata</c> set through BUILD.
/// </summary>
/// <remarks>
/// Razorvine writes tuples (<c>object?[]</c>), lists and dicts itself and consults custom picklers only for other
/// types, so the node types of the builder carry everything torch-specific. Custom picklers are registered in
/// a process-wide table, where this class registers only its own node types.
/// </remarks>
internal sealed class TorchPickler : Pickler
{
    private readonly Dictionary<string, GlobalNode> _globals = new(StringComparer.Ordinal);

    static TorchPickler()
    {
        registerCustomPickler(typeof(TensorNode), new TensorNodePickler());
        registerCustomPickler(typeof(OrderedDictNode), new OrderedDictNodePickler());
        registerCustomPickler(typeof(GlobalNode), new GlobalNodePickler());
        registerCustomPickler(typeof(CounterNode), new CounterNodePickler());
        registerCustomPickler(typeof(BoundMethodNode), new BoundMethodNodePickler());
    }

    private TorchPickler()
        : base(useMemo: true)
    {
    }

    /// <summary>Tensors in the order of their storage keys, which is the order the pickle first reaches them.</summary>
    private List<TensorNode> Storages { get; } = [];

    /// <summary>Pickles <paramref name="root"/> and returns the bytes and the tensors whose storages the pickle references.</summary>
    public static (byte[] Pickle, IReadOnlyList<TensorNode> Storages) Pickle(object root)
    {
        using var pickler = new TorchPickler();
        byte[] bytes = pickler.dumps(root);
        return (bytes, pickler.Storages);
    }

    /// <inheritdoc/>
    protected override bool persistentId(object pid, out object newpid)
    {
        if (pid is StorageNode storage)
        {
            var tensor = storage.Tensor;
            long numElements = tensor.ByteCount / tensor.DType.ElementSize();
            newpid = new object[] { "storage", Global("torch", tensor.DType.StorageClassName()), tensor.StorageKey!, "cpu", numElements };
            return true;
        }

        newpid = null!;
        return false;
    }

    /// <summary>Returns the one node for a global in this pickle, so that repeats become memo lookups.</summary>
    private GlobalNode Global(string module, string name)
    {
        string key = module + "\n" + name;
        if (!_globals.TryGetValue(key, out var node))
        {
            node = new GlobalNode(module, name);
            _globals.Add(key, node);
        }

        return node;
    }

    /// <summary>Returns torch's strides of a contiguous tensor, which count a size of 0 as 1.</summary>
    private static long[] ContiguousStride(long[] shape)
    {
        var stride = new long[shape.Length];
        long step = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            stride[d] = step;
            step *= Math.Max(shape[d], 1);
        }

        return stride;
    }

    /// <summary>Returns a shape or stride as a tuple of boxed longs, because Razorvine pickles <c>long[]</c> as <c>array.array</c>.</summary>
    private static object[] ToTuple(long[] dimensions) => dimensions.Select(size => (object)size).ToArray();

    /// <summary>Placeholder whose persistent id is the storage tuple of a tensor.</summary>
    private sealed class StorageNode(TensorNode tensor)
    {
        public TensorNode Tensor { get; } = tensor;
    }

    /// <summary>A module-level class or function, pickled as GLOBAL.</summary>
    private sealed class GlobalNode(string module, string name)
    {
        public string Module { get; } = module;

        public string Name { get; } = name;
    }

    private sealed class GlobalNodePickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var node = (GlobalNode)o;
            outs.WriteByte(PickleOpcodes.Global);
            outs.Write(Encoding.ASCII.GetBytes(node.Module + "\n" + node.Name + "\n"));
        }
    }

    /// <summary>Writes <c>_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())</c> as torch 1.13 does.</summary>
    private sealed class TensorNodePickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var pickler = (TorchPickler)currentPickler;
            var node = (TensorNode)o;
            node.StorageKey = pickler.Storages.Count.ToString(CultureInfo.InvariantCulture);
            pickler.Storages.Add(node);

            pickler.save(pickler.Global("torch._utils", "_rebuild_tensor_v2"));
            var backwardHooks = new OrderedDictNode(new OrderedDictionary<object, object?>(), metadata: null);
            object[] arguments = [new StorageNode(node), 0L, ToTuple(node.Shape), ToTuple(ContiguousStride(node.Shape)), false, backwardHooks];
            pickler.save(arguments);
            outs.WriteByte(PickleOpcodes.Reduce);
        }
    }

    /// <summary>Writes <c>OrderedDict()</c>, its items through SETITEMS, then <c>{'_metadata': ...}</c> through BUILD, as Python's pickle does.</summary>
    private sealed class OrderedDictNodePickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var pickler = (TorchPickler)currentPickler;
            var node = (OrderedDictNode)o;
            pickler.save(pickler.Global("collections", "OrderedDict"));
            outs.WriteByte(PickleOpcodes.EmptyTuple);
            outs.WriteByte(PickleOpcodes.Reduce);
            if (node.Items.Count > 0)
            {
                outs.WriteByte(PickleOpcodes.Mark);
                foreach (var (key, value) in node.Items)
                {
                    pickler.save(key);
                    pickler.save(value);
                }

                outs.WriteByte(PickleOpcodes.SetItems);
            }

            if (node.Metadata is not null)
            {
                pickler.save(new OrderedDictionary<object, object?> { ["_metadata"] = node.Metadata });
                outs.WriteByte(PickleOpcodes.Build);
            }
        }
    }

    /// <summary>Writes <c>Counter({...})</c> as Python's pickle does: the class, a one-item tuple of a plain dict, REDUCE.</summary>
    private sealed class CounterNodePickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var pickler = (TorchPickler)currentPickler;
            var node = (CounterNode)o;
            pickler.save(pickler.Global("collections", "Counter"));
            pickler.save(new object[] { node.Items });
            outs.WriteByte(PickleOpcodes.Reduce);
        }
    }

    /// <summary>
    /// Writes <c>getattr(cls.__new__(cls), name)</c>: an instance made by NEWOBJ without running its constructor,
    /// then the method taken from it. Protocol 2 names the module builtins as <c>__builtin__</c>, as Python does.
    /// </summary>
    private sealed class BoundMethodNodePickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var pickler = (TorchPickler)currentPickler;
            var method = ((BoundMethodNode)o).Method;
            pickler.save(pickler.Global("__builtin__", "getattr"));
            pickler.save(pickler.Global(method.Module, method.ClassName));
            outs.WriteByte(PickleOpcodes.EmptyTuple);
            outs.WriteByte(PickleOpcodes.NewObj);
            pickler.save(method.MethodName);
            outs.WriteByte(PickleOpcodes.Tuple2);
            outs.WriteByte(PickleOpcodes.Reduce);
        }
    }
}
