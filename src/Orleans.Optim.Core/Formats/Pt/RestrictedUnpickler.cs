using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Unpickler for the <c>data.pkl</c> of a <c>.pt</c> file that supports only the plain-data opcodes of pickle
/// protocols 0 to 5 and an allow-list of globals, and never runs code from the file.
/// </summary>
/// <remarks>
/// Every opcode consumes at least one byte and does work bounded by the bytes it reads, except dict inserts,
/// whose key hashing has a budget, so time and memory grow linearly with the pickle size.
/// </remarks>
internal sealed class RestrictedUnpickler
{
    /// <summary>Highest tensor rank accepted, far above the rank of the tensors in a state dict.</summary>
    private const int MaxTensorRank = 64;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _data;
    private readonly string _entryName;
    private readonly PtReaderOptions _options;
    private readonly TensorLoader _tensors;
    private readonly Dictionary<long, object?> _memo = [];

    // Tensors by the argument tuple of their _rebuild_tensor_v2 call. torch pickles each tensor once, so only a
    // crafted pickle calls it twice with one memoized tuple, which then returns the same tensor instead of a copy.
    private readonly Dictionary<object?[], Tensor> _rebuiltTensors = new(ReferenceEqualityComparer.Instance);
    private readonly Stack<List<object?>> _metastack = new();
    private List<object?> _stack = [];
    private int _position;
    private int _opcodeStart;
    private byte _opcode;

    // Characters of string dict keys that inserts may still hash. A memoized long key can be inserted many
    // times for two bytes each, so without a budget a small pickle could take quadratic time.
    private long _keyCharactersLeft;

    /// <summary>Creates an unpickler over the bytes of one <c>data.pkl</c>.</summary>
    public RestrictedUnpickler(byte[] data, string entryName, PtReaderOptions options, TensorLoader tensors)
    {
        _data = data;
        _entryName = entryName;
        _options = options;
        _tensors = tensors;
        _keyCharactersLeft = (4L * data.Length) + (1 << 20);
    }

    /// <summary>Runs the pickle program up to STOP and returns the value it produced.</summary>
    /// <exception cref="PtFormatException">The pickle is invalid, uses an unsupported opcode or global, or exceeds a limit.</exception>
    public object? Load()
    {
        while (true)
        {
            if (_position >= _data.Length)
            {
                throw Fail($"{_entryName} ends without a STOP opcode. The file is truncated or corrupt. Re-create it.");
            }

            _opcodeStart = _position;
            _opcode = _data[_position++];
            if (_opcode == PickleOpcodes.Stop)
            {
                return Pop();
            }

            Execute(_opcode);
        }
    }

    private void Execute(byte opcode)
    {
        switch (opcode)
        {
            case PickleOpcodes.Proto:
                byte protocol = ReadByte();
                if (protocol > 5)
                {
                    throw Fail($"{Where} uses pickle protocol {protocol}, but only protocols 0 to 5 exist. The file is corrupt or not a .pt file.");
                }

                break;
            case PickleOpcodes.Frame:
                ulong frameLength = ReadUInt64();
                if (frameLength > (ulong)(_data.Length - _position))
                {
                    throw Truncated();
                }

                break;
            case PickleOpcodes.Mark:
                _metastack.Push(_stack);
                _stack = [];
                break;
            case PickleOpcodes.Pop:
                if (_stack.Count > 0)
                {
                    _stack.RemoveAt(_stack.Count - 1);
                }
                else
                {
                    PopMark();
                }

                break;
            case PickleOpcodes.PopMark:
                PopMark();
                break;
            case PickleOpcodes.Dup:
                Push(Top());
                break;

            case PickleOpcodes.None:
                Push(null);
                break;
            case PickleOpcodes.NewTrue:
                Push(true);
                break;
            case PickleOpcodes.NewFalse:
                Push(false);
                break;
            case PickleOpcodes.Int:
                Push(ParseIntLine(ReadLine()));
                break;
            case PickleOpcodes.BinInt:
                Push((long)ReadInt32());
                break;
            case PickleOpcodes.BinInt1:
                Push((long)ReadByte());
                break;
            case PickleOpcodes.BinInt2:
                Push((long)ReadUInt16());
                break;
            case PickleOpcodes.Long:
                Push(ParseLongLine(ReadLine()));
                break;
            case PickleOpcodes.Long1:
                Push(DecodeLong(ReadBytes(ReadByte())));
                break;
            case PickleOpcodes.Long4:
                Push(DecodeLong(ReadBytes(ReadLength32(signed: true))));
                break;
            case PickleOpcodes.Float:
                Push(ParseFloatLine(ReadLine()));
                break;
            case PickleOpcodes.BinFloat:
                Push(BitConverter.Int64BitsToDouble(BinaryPrimitives.ReadInt64BigEndian(ReadBytes(8))));
                break;

            case PickleOpcodes.String:
                Push(DecodeUtf8(PickleText.DecodeEscapedString(ReadLine(), out string? error) ?? throw Fail(error!)));
                break;
            case PickleOpcodes.BinString:
                Push(DecodeUtf8(ReadBytes(ReadLength32(signed: true))));
                break;
            case PickleOpcodes.ShortBinString:
                Push(DecodeUtf8(ReadBytes(ReadByte())));
                break;
            case PickleOpcodes.Unicode:
                Push(PickleText.DecodeRawUnicodeEscape(ReadLine(), out string? unicodeError) ?? throw Fail(unicodeError!));
                break;
            case PickleOpcodes.BinUnicode:
                Push(DecodeUtf8(ReadBytes(ReadLength32(signed: false))));
                break;
            case PickleOpcodes.ShortBinUnicode:
                Push(DecodeUtf8(ReadBytes(ReadByte())));
                break;
            case PickleOpcodes.BinUnicode8:
                Push(DecodeUtf8(ReadBytes(ReadLength64())));
                break;

            case PickleOpcodes.EmptyDict:
                Push(new OrderedDictionary<object, object?>());
                break;
            case PickleOpcodes.Dict:
                var dict = new OrderedDictionary<object, object?>();
                SetItems(dict, PopMark());
                Push(dict);
                break;
            case PickleOpcodes.SetItem:
                object? value = Pop();
                object? key = Pop();
                SetItem(TopDict(), key, value);
                break;
            case PickleOpcodes.SetItems:
                var pairs = PopMark();
                SetItems(TopDict(), pairs);
                break;

            case PickleOpcodes.EmptyList:
                Push(new List<object?>());
                break;
            case PickleOpcodes.List:
                var items = PopMark();
                CheckCount(items.Count, "list");
                Push(items);
                break;
            case PickleOpcodes.Append:
                object? item = Pop();
                Append(TopList(), [item]);
                break;
            case PickleOpcodes.Appends:
                var appended = PopMark();
                Append(TopList(), appended);
                break;

            case PickleOpcodes.EmptyTuple:
                Push(Array.Empty<object?>());
                break;
            case PickleOpcodes.Tuple:
                var tupleItems = PopMark();
                CheckCount(tupleItems.Count, "tuple");
                Push(tupleItems.ToArray());
                break;
            case PickleOpcodes.Tuple1:
                Push(PopTuple(1));
                break;
            case PickleOpcodes.Tuple2:
                Push(PopTuple(2));
                break;
            case PickleOpcodes.Tuple3:
                Push(PopTuple(3));
                break;

            case PickleOpcodes.Put:
                Memoize(ParseMemoIndex(ReadLine()));
                break;
            case PickleOpcodes.BinPut:
                Memoize(ReadByte());
                break;
            case PickleOpcodes.LongBinPut:
                Memoize(ReadUInt32());
                break;
            case PickleOpcodes.Memoize:
                Memoize(_memo.Count);
                break;
            case PickleOpcodes.Get:
                PushMemo(ParseMemoIndex(ReadLine()));
                break;
            case PickleOpcodes.BinGet:
                PushMemo(ReadByte());
                break;
            case PickleOpcodes.LongBinGet:
                PushMemo(ReadUInt32());
                break;

            case PickleOpcodes.Global:
                string module = DecodeUtf8(ReadLine());
                string name = DecodeUtf8(ReadLine());
                Push(TorchGlobal.Resolve(module, name, _entryName, _opcodeStart));
                break;
            case PickleOpcodes.Inst:
                // INST names its class inline. Check the name first, so that a forbidden class is reported by name.
                string instModule = DecodeUtf8(ReadLine());
                string instName = DecodeUtf8(ReadLine());
                var instClass = TorchGlobal.Resolve(instModule, instName, _entryName, _opcodeStart);
                throw Fail(
                    $"Unsupported pickle opcode {PickleOpcodes.Describe(opcode)} in {Where} creates {instClass}, but torch.save never writes INST. " +
                    "The file was not written by torch.save from a state dict. Re-save it with torch.save.");
            case PickleOpcodes.StackGlobal:
                if (Pop() is not string globalName || Pop() is not string globalModule)
                {
                    throw Fail($"STACK_GLOBAL in {Where} needs a module name and a global name as strings. The file is corrupt or not a .pt file.");
                }

                Push(TorchGlobal.Resolve(globalModule, globalName, _entryName, _opcodeStart));
                break;
            case PickleOpcodes.Reduce:
                Reduce();
                break;
            case PickleOpcodes.NewObj:
                NewObject();
                break;
            case PickleOpcodes.Build:
                Build();
                break;
            case PickleOpcodes.BinPersId:
                Push(_tensors.LoadStorage(Pop(), _opcodeStart));
                break;
            case PickleOpcodes.PersId:
                Push(_tensors.LoadStorage(DecodeUtf8(ReadLine()), _opcodeStart));
                break;

            default:
                throw Fail(
                    $"Unsupported pickle opcode {PickleOpcodes.Describe(opcode)} in {Where}. A .pt state dict uses only plain-data opcodes, " +
                    "so the file was not written by torch.save from a state dict, or it contains objects other than tensors and Python containers. " +
                    "Save only state dicts of tensors, numbers, strings and containers.");
        }
    }

    private void Reduce()
    {
        object? args = Pop();
        object? callable = Top();
        if (callable is not TorchGlobal function)
        {
            throw Fail($"REDUCE in {Where} calls {Describe(callable)}, which is not a class or function. The file is corrupt or not a .pt file.");
        }

        if (args is not object?[] arguments)
        {
            throw Fail($"REDUCE in {Where} calls {function} with {Describe(args)} instead of an argument tuple. The file is corrupt or not a .pt file.");
        }

        object result = function.Kind switch
        {
            TorchGlobalKind.OrderedDict when arguments.Length == 0 => new PythonOrderedDict(),
            TorchGlobalKind.OrderedDict => throw Fail(
                $"{Where} calls collections.OrderedDict with {arguments.Length} arguments, but torch pickles it with none and adds the items afterwards. " +
                "Re-save the object with torch.save."),
            TorchGlobalKind.RebuildTensorV2 => RebuildTensorOnce(arguments),
            TorchGlobalKind.RebuildParameter => RebuildParameter(arguments),
            TorchGlobalKind.Counter => CreateCounter(arguments),
            TorchGlobalKind.Getattr => GetAnnealFunction(arguments),
            TorchGlobalKind.DefaultDict => CreateDefaultDict(arguments),
            TorchGlobalKind.OneCycleLRClass or TorchGlobalKind.OptimizerClass or TorchGlobalKind.DictClass => throw Fail(
                $"{Where} calls {function} with REDUCE, but torch 1.13 pickles that class only as an object created by NEWOBJ " +
                "or as the argument of defaultdict. The file is corrupt or was not written by torch.save."),
            _ => throw Fail(
                $"{Where} calls the storage class {function} directly, but a .pt file references storages only through persistent ids. " +
                "The file is corrupt or was not written by torch.save."),
        };
        _stack[^1] = result;
    }

    /// <summary>Creates <c>Counter(items)</c> as Python's pickle of a Counter calls it: with one plain dict, or with none.</summary>
    private PythonCounter CreateCounter(object?[] arguments)
    {
        return arguments switch
        {
            [] => new PythonCounter(),
            [OrderedDictionary<object, object?> items] when items.GetType() == typeof(OrderedDictionary<object, object?>) => new PythonCounter(items),
            _ => throw Fail(
                $"{Where} calls collections.Counter with {Describe(arguments)}, but Python pickles a Counter with one plain dict of its items. " +
                "The file is corrupt or was not written by torch.save."),
        };
    }

    /// <summary>
    /// Returns the anneal function of a OneCycleLR state dict for <c>getattr(scheduler, name)</c>, the only call of
    /// <c>getattr</c> that a <c>.pt</c> file may make.
    /// </summary>
    private PythonBoundMethod GetAnnealFunction(object?[] arguments)
    {
        if (arguments is [PickledObject { Type.Kind: TorchGlobalKind.OneCycleLRClass } scheduler, string name]
            && PythonBoundMethod.TryGet("torch.optim.lr_scheduler", "OneCycleLR", name, out var method))
        {
            return method;
        }

        string allowed = string.Join(" or ", PythonBoundMethod.Known.Select(m => m.MethodName));
        throw Fail(
            $"{Where} calls builtins.getattr with {Describe(arguments)}, but a .pt file may only use getattr to take {allowed} " +
            "from a OneCycleLR object, as torch 1.13 pickles the anneal_func of a OneCycleLR state dict. " +
            "The file may be malicious. Do not load it with torch.load either.");
    }

    /// <summary>Creates the placeholder of <c>defaultdict(dict)</c>, the type of a pickled optimizer's <c>state</c>.</summary>
    private PickledDefaultDict CreateDefaultDict(object?[] arguments)
    {
        if (arguments is [TorchGlobal { Kind: TorchGlobalKind.DictClass }])
        {
            return new PickledDefaultDict();
        }

        throw Fail(
            $"{Where} calls collections.defaultdict with {Describe(arguments)}, but a .pt file may only contain defaultdict(dict), " +
            "the type of a pickled optimizer's state. The file is corrupt or was not written by torch.save.");
    }

    /// <summary>Runs NEWOBJ, which torch 1.13 uses for the OneCycleLR object and its optimizer inside a OneCycleLR state dict.</summary>
    private void NewObject()
    {
        object? args = Pop();
        object? type = Pop();
        if (type is not TorchGlobal { Kind: TorchGlobalKind.OneCycleLRClass or TorchGlobalKind.OptimizerClass } allowedType)
        {
            throw Fail(
                $"NEWOBJ in {Where} creates an object of {Describe(type)}, but a .pt file may only create OneCycleLR and optimizer objects, " +
                "which torch 1.13 pickles for the anneal_func of a OneCycleLR state dict. The file may be malicious. Do not load it with torch.load either.");
        }

        if (args is not object?[] { Length: 0 })
        {
            throw Fail($"NEWOBJ in {Where} creates {allowedType} with {Describe(args)} instead of no arguments. The file is corrupt or was not written by torch.save.");
        }

        Push(new PickledObject(allowedType));
    }

    private Tensor RebuildTensorOnce(object?[] arguments)
    {
        if (!_rebuiltTensors.TryGetValue(arguments, out var tensor))
        {
            tensor = RebuildTensor(arguments);
            _rebuiltTensors.Add(arguments, tensor);
        }

        return tensor;
    }

    private Tensor RebuildTensor(object?[] arguments)
    {
        const string Function = "torch._utils._rebuild_tensor_v2";
        if (arguments.Length is not (6 or 7))
        {
            throw Fail($"{Function} in {Where} gets {arguments.Length} arguments instead of 6 (7 with tensor metadata). The file is corrupt or not a .pt file.");
        }

        if (arguments[0] is not StorageReference storage)
        {
            throw Fail($"The storage argument of {Function} in {Where} is {Describe(arguments[0])} instead of a storage persistent id. The file is corrupt or not a .pt file.");
        }

        if (arguments[1] is not long storageOffset)
        {
            throw Fail($"The storage_offset argument of {Function} in {Where} is {Describe(arguments[1])} instead of an int. The file is corrupt or not a .pt file.");
        }

        long[] shape = ToDimensions(arguments[2], "size");
        long[] stride = ToDimensions(arguments[3], "stride");
        if (arguments[4] is not bool)
        {
            throw Fail($"The requires_grad argument of {Function} in {Where} is {Describe(arguments[4])} instead of a bool. The file is corrupt or not a .pt file.");
        }

        if (arguments[5] is not OrderedDictionary<object, object?>)
        {
            throw Fail($"The backward_hooks argument of {Function} in {Where} is {Describe(arguments[5])} instead of an OrderedDict. The file is corrupt or not a .pt file.");
        }

        if (arguments.Length == 7 && arguments[6] is not (null or OrderedDictionary<object, object?> { Count: 0 }))
        {
            throw Fail(
                $"A tensor in {Where} has tensor metadata ({Describe(arguments[6])}), such as a conjugate or negative bit, which is not supported. " +
                "Call tensor.resolve_conj().resolve_neg() before torch.save.");
        }

        return _tensors.RebuildTensor(storage, storageOffset, shape, stride, _opcodeStart);
    }

    private Tensor RebuildParameter(object?[] arguments)
    {
        const string Function = "torch._utils._rebuild_parameter";
        if (arguments.Length != 3)
        {
            throw Fail($"{Function} in {Where} gets {arguments.Length} arguments instead of 3. The file is corrupt or not a .pt file.");
        }

        if (arguments[0] is not Tensor tensor)
        {
            throw Fail($"The data argument of {Function} in {Where} is {Describe(arguments[0])} instead of a tensor. The file is corrupt or not a .pt file.");
        }

        if (arguments[1] is not bool || arguments[2] is not OrderedDictionary<object, object?>)
        {
            throw Fail($"{Function} in {Where} gets {Describe(arguments[1])} and {Describe(arguments[2])} instead of a bool and an OrderedDict. The file is corrupt or not a .pt file.");
        }

        return tensor;
    }

    private long[] ToDimensions(object? value, string argumentName)
    {
        if (value is not object?[] tuple)
        {
            throw Fail($"The {argumentName} argument of a tensor in {Where} is {Describe(value)} instead of a tuple of ints. The file is corrupt or not a .pt file.");
        }

        if (tuple.Length > MaxTensorRank)
        {
            throw Fail($"A tensor in {Where} has {tuple.Length} dimensions, more than the {MaxTensorRank} supported. The file is corrupt or not a .pt file.");
        }

        var dimensions = new long[tuple.Length];
        for (int i = 0; i < tuple.Length; i++)
        {
            dimensions[i] = tuple[i] as long?
                ?? throw Fail($"Item {i} of the {argumentName} of a tensor in {Where} is {Describe(tuple[i])} instead of an int. The file is corrupt or not a .pt file.");
        }

        return dimensions;
    }

    private void Build()
    {
        object? state = Pop();
        object? instance = Top();
        if (instance is PickledObject pickledObject)
        {
            // The placeholder drops its attributes, which contain the optimizer and the scheduler's own state.
            // NOTE: the optimizer's parameters and state tensors in them are still allocated and read, within the
            // reader's limits, and then dropped.
            if (state is not OrderedDictionary<object, object?> || state is PythonOrderedDict or PythonCounter or PickledDefaultDict)
            {
                throw Fail($"BUILD in {Where} gives {pickledObject} the state {Describe(state)} instead of a dict of attributes. The file is corrupt or not a .pt file.");
            }

            return;
        }

        if (instance is not PythonOrderedDict orderedDict)
        {
            throw Fail(
                $"BUILD in {Where} sets the state of {Describe(instance)}, but a .pt file may only set attributes of an OrderedDict " +
                "(the _metadata of a model state dict). The file is corrupt or not a .pt file.");
        }

        if (state is not OrderedDictionary<object, object?> attributes || state is PythonOrderedDict)
        {
            throw Fail($"BUILD in {Where} gives an OrderedDict the state {Describe(state)} instead of a dict of attributes. The file is corrupt or not a .pt file.");
        }

        // Look at no more than two keys, so that a large memoized state costs the same as a small one.
        foreach (var (name, _) in attributes.Take(2))
        {
            if (name is not "_metadata")
            {
                throw Fail(
                    $"BUILD in {Where} sets the attribute {Describe(name)} on an OrderedDict, but only '_metadata' is supported. " +
                    "Save a plain state dict without extra attributes.");
            }
        }

        if (attributes.TryGetValue("_metadata", out object? metadata))
        {
            orderedDict.Metadata = metadata as OrderedDictionary<object, object?>
                ?? throw Fail($"The _metadata attribute in {Where} is {Describe(metadata)} instead of a dict. The file is corrupt or not a .pt file.");
        }
    }

    private void SetItems(OrderedDictionary<object, object?> dict, List<object?> pairs)
    {
        if (pairs.Count % 2 != 0)
        {
            throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} has an odd number of items after MARK, so a key lacks its value. The file is corrupt.");
        }

        for (int i = 0; i < pairs.Count; i += 2)
        {
            SetItem(dict, pairs[i], pairs[i + 1]);
        }
    }

    private void SetItem(OrderedDictionary<object, object?> dict, object? key, object? value)
    {
        switch (key)
        {
            case string text:
                _keyCharactersLeft -= text.Length;
                if (_keyCharactersLeft < 0)
                {
                    throw Fail(
                        $"{Where} inserts dict keys with more characters in all than 4 times the pickle size plus 1,048,576, which only a crafted file does. " +
                        "The file may be malicious. Do not load it.");
                }

                break;
            // NOTE: tuple keys compare by reference here, so two equal tuples stay two keys where Python would merge them.
            case long or bool or double or object?[]:
                break;
            case Tensor when dict is PickledDefaultDict:
                // A pickled optimizer's state is keyed by its parameter tensors.
                break;
            default:
                throw Fail(
                    $"A dict in {Where} has the key {Describe(key)}, but keys must be str, int, float, bool or tuple. " +
                    "Save a state dict with such keys.");
        }

        if (dict.Count >= _options.MaxContainerItems && !dict.ContainsKey(key))
        {
            throw ContainerLimit("dict");
        }

        dict[key] = value;
    }

    private void Append(List<object?> list, List<object?> items)
    {
        if (items.Count > _options.MaxContainerItems - list.Count)
        {
            throw ContainerLimit("list");
        }

        list.AddRange(items);
    }

    private void CheckCount(int count, string kind)
    {
        if (count > _options.MaxContainerItems)
        {
            throw ContainerLimit(kind);
        }
    }

    private PtFormatException ContainerLimit(string kind) =>
        Fail(
            $"A {kind} in {Where} has more than {_options.MaxContainerItems} items, the MaxContainerItems limit. " +
            "Raise PtReaderOptions.MaxContainerItems if you trust the file.");

    private OrderedDictionary<object, object?> TopDict() =>
        Top() as OrderedDictionary<object, object?>
            ?? throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} adds items to {Describe(Top())}, which is not a dict. The file is corrupt or not a .pt file.");

    private List<object?> TopList() =>
        Top() as List<object?>
            ?? throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} appends to {Describe(Top())}, which is not a list. The file is corrupt or not a .pt file.");

    private object?[] PopTuple(int count)
    {
        if (_stack.Count < count)
        {
            throw StackUnderflow();
        }

        var tuple = _stack.GetRange(_stack.Count - count, count).ToArray();
        _stack.RemoveRange(_stack.Count - count, count);
        return tuple;
    }

    private void Memoize(long index)
    {
        if (_stack.Count == 0)
        {
            throw StackUnderflow();
        }

        _memo[index] = _stack[^1];
    }

    private void PushMemo(long index)
    {
        if (!_memo.TryGetValue(index, out object? value))
        {
            throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} reads memo entry {index}, which was never stored. The file is corrupt or not a .pt file.");
        }

        Push(value);
    }

    private long ParseMemoIndex(ReadOnlySpan<byte> line)
    {
        if (!long.TryParse(Encoding.ASCII.GetString(line).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long index))
        {
            throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} has the invalid memo index '{Printable(line)}'. The file is corrupt.");
        }

        return index;
    }

    private object ParseIntLine(ReadOnlySpan<byte> line)
    {
        // Protocol 0 writes False and True as INT with the texts 00 and 01.
        if (line.SequenceEqual("00"u8))
        {
            return false;
        }

        if (line.SequenceEqual("01"u8))
        {
            return true;
        }

        return ParseInteger(line);
    }

    private long ParseLongLine(ReadOnlySpan<byte> line)
    {
        if (line.Length > 0 && line[^1] == (byte)'L')
        {
            line = line[..^1];
        }

        return ParseInteger(line);
    }

    private long ParseInteger(ReadOnlySpan<byte> line)
    {
        string text = Encoding.ASCII.GetString(line).Trim();
        const NumberStyles Style = NumberStyles.AllowLeadingSign;
        if (long.TryParse(text, Style, CultureInfo.InvariantCulture, out long value))
        {
            return value;
        }

        // A sign and digits that long.TryParse rejects are a valid Python int outside 64 bits. Checking the digits
        // costs linear time, where BigInteger.TryParse takes quadratic time on a line of millions of digits.
        var digits = text.AsSpan();
        if (digits.Length > 0 && digits[0] is '+' or '-')
        {
            digits = digits[1..];
        }

        if (digits.Length > 0 && !digits.ContainsAnyExceptInRange('0', '9'))
        {
            throw OutsideInt64();
        }

        throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} has the invalid integer '{Printable(line)}'. The file is corrupt.");
    }

    private double ParseFloatLine(ReadOnlySpan<byte> line)
    {
        string text = Encoding.ASCII.GetString(line).Trim();
        switch (text.ToLowerInvariant())
        {
            case "nan" or "+nan" or "-nan":
                return double.NaN;
            case "inf" or "+inf" or "infinity" or "+infinity":
                return double.PositiveInfinity;
            case "-inf" or "-infinity":
                return double.NegativeInfinity;
        }

        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
        {
            return value;
        }

        throw Fail($"FLOAT in {Where} has the invalid number '{Printable(line)}'. The file is corrupt.");
    }

    /// <summary>Decodes a little-endian two's complement integer as LONG1 and LONG4 store it.</summary>
    private long DecodeLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return 0;
        }

        if (bytes.Length > 8)
        {
            // Longer encodings fit in 64 bits only when every extra byte repeats the sign of byte 7.
            byte fill = (bytes[7] & 0x80) != 0 ? (byte)0xFF : (byte)0x00;
            if (bytes[8..].ContainsAnyExcept(fill))
            {
                throw OutsideInt64();
            }

            bytes = bytes[..8];
        }

        Span<byte> buffer = stackalloc byte[8];
        buffer.Fill((bytes[^1] & 0x80) != 0 ? (byte)0xFF : (byte)0x00);
        bytes.CopyTo(buffer);
        return BinaryPrimitives.ReadInt64LittleEndian(buffer);
    }

    private PtFormatException OutsideInt64() =>
        Fail($"An int in {Where} is outside the 64-bit range, which this reader does not support. Save Python ints between -2**63 and 2**63-1.");

    private string DecodeUtf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new PtFormatException(
                $"A string in {Where} is not valid UTF-8. The file is corrupt or not a .pt file.",
                _entryName,
                _opcodeStart,
                ex);
        }
    }

    private void Push(object? value) => _stack.Add(value);

    private object? Pop()
    {
        if (_stack.Count == 0)
        {
            throw StackUnderflow();
        }

        object? value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Top() => _stack.Count > 0 ? _stack[^1] : throw StackUnderflow();

    private List<object?> PopMark()
    {
        if (_metastack.Count == 0)
        {
            throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} needs a MARK, but none is open. The file is corrupt or not a .pt file.");
        }

        var items = _stack;
        _stack = _metastack.Pop();
        return items;
    }

    private PtFormatException StackUnderflow() =>
        Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} needs a value, but the stack is empty above the last MARK. The file is corrupt or not a .pt file.");

    private byte ReadByte() => _position < _data.Length ? _data[_position++] : throw Truncated();

    private ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2));

    private int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4));

    private uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4));

    private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

    private int ReadLength32(bool signed)
    {
        long length = signed ? ReadInt32() : ReadUInt32();
        if (length < 0)
        {
            throw Fail($"{PickleOpcodes.Describe(_opcode)} in {Where} has the negative length {length}. The file is corrupt.");
        }

        return length > _data.Length - _position ? throw Truncated() : (int)length;
    }

    private int ReadLength64()
    {
        ulong length = ReadUInt64();
        return length > (ulong)(_data.Length - _position) ? throw Truncated() : (int)length;
    }

    private ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count > _data.Length - _position)
        {
            throw Truncated();
        }

        var bytes = _data.AsSpan(_position, count);
        _position += count;
        return bytes;
    }

    private ReadOnlySpan<byte> ReadLine()
    {
        int length = _data.AsSpan(_position).IndexOf((byte)'\n');
        if (length < 0)
        {
            throw Truncated();
        }

        var line = _data.AsSpan(_position, length);
        _position += length + 1;
        return line;
    }

    private PtFormatException Truncated() =>
        Fail($"{Where} ends in the middle of {PickleOpcodes.Describe(_opcode)}. The file is truncated or corrupt. Re-create it.");

    private PtFormatException Fail(string message) => new(message, _entryName, _opcodeStart);

    /// <summary>Entry name and offset of the current opcode, for messages.</summary>
    private string Where => $"{_entryName} at byte {_opcodeStart}";

    private static string Printable(ReadOnlySpan<byte> bytes) => TorchGlobal.Printable(Encoding.Latin1.GetString(bytes[..Math.Min(bytes.Length, 200)]));

    /// <summary>Describes a value from the pickle in a few words, without formatting its contents.</summary>
    internal static string Describe(object? value) => value switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double => "a float",
        string s => "'" + TorchGlobal.Printable(s) + "'",
        object?[] tuple => $"a tuple of {tuple.Length} items",
        List<object?> list => $"a list of {list.Count} items",
        PythonOrderedDict dict => $"an OrderedDict of {dict.Count} items",
        PythonCounter counter => $"a Counter of {counter.Count} items",
        PickledDefaultDict dict => $"a defaultdict of {dict.Count} items",
        OrderedDictionary<object, object?> dict => $"a dict of {dict.Count} items",
        PickledObject pickled => pickled.ToString(),
        PythonBoundMethod method => method.ToString(),
        Tensor tensor => "a " + tensor,
        TorchGlobal global => global.QualifiedName,
        StorageReference storage => "a reference to " + storage,
        _ => value.GetType().Name,
    };
}
