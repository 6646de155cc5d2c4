using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Checks the value that a pickle produced: only Python value types of <see cref="PythonValues"/>, no container
/// that contains itself, no path from the root through more containers than the nesting limit, and no more values
/// than the expanded-size limit when each shared container counts once per reference.
/// </summary>
/// <remarks>
/// A pickle can fill a container after putting it into another and can share containers through the memo,
/// so the depth can only be known once the whole value exists. The walk visits each container once and keeps
/// its own stack, so a deep value cannot overflow the call stack. Sharing lets a few bytes of pickle make a tree
/// whose expanded size doubles at each level, which would make any code that walks the tree recursively, such as
/// formatting or comparing it, run for an exponential time.
/// </remarks>
internal static class PickleTreeValidator
{
    /// <summary>Validates the tree under <paramref name="root"/>.</summary>
    /// <exception cref="PtFormatException">The tree contains a non-value object or a cycle, is nested too deeply, or expands to too many values.</exception>
    public static void Validate(object? root, int maxDepth, long maxExpandedValues, string entryName)
    {
        if (!IsContainer(root))
        {
            CheckLeaf(root, entryName);
            return;
        }

        var done = new Dictionary<object, (int Depth, long ExpandedValues)>(ReferenceEqualityComparer.Instance);
        var active = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var frames = new Stack<Frame>();
        Enter(root!);

        while (frames.Count > 0)
        {
            var frame = frames.Peek();
            if (frame.Children.MoveNext())
            {
                object? child = frame.Children.Current;
                if (!IsContainer(child))
                {
                    CheckLeaf(child, entryName);
                    frame.ExpandedValues++;
                }
                else if (done.TryGetValue(child!, out var shared))
                {
                    CheckDepth(frames.Count + shared.Depth);
                    frame.ChildDepth = Math.Max(frame.ChildDepth, shared.Depth);
                    frame.ExpandedValues = CheckExpandedValues(frame.ExpandedValues + shared.ExpandedValues);
                }
                else if (active.Contains(child!))
                {
                    throw new PtFormatException(
                        $"{entryName} builds a container that contains itself, which a state dict never does. The file is corrupt or was crafted.",
                        entryName);
                }
                else
                {
                    Enter(child!);
                }

                continue;
            }

            frames.Pop();
            active.Remove(frame.Node);
            int depth = frame.ChildDepth + 1;
            long expandedValues = CheckExpandedValues(frame.ExpandedValues + 1);
            done[frame.Node] = (depth, expandedValues);
            if (frames.Count > 0)
            {
                var parent = frames.Peek();
                parent.ChildDepth = Math.Max(parent.ChildDepth, depth);
                parent.ExpandedValues = CheckExpandedValues(parent.ExpandedValues + expandedValues);
            }
        }

        void Enter(object container)
        {
            CheckDepth(frames.Count + 1);
            active.Add(container);
            frames.Push(new Frame(container, Children(container).GetEnumerator()));
        }

        // Each operand is at most maxExpandedValues, so the sums checked here cannot overflow.
        long CheckExpandedValues(long expandedValues)
        {
            if (expandedValues > maxExpandedValues)
            {
                throw new PtFormatException(
                    $"{entryName} builds a value of more than {maxExpandedValues} items when each shared container is counted once per reference, " +
                    "the MaxExpandedValues limit. A state dict shares few containers, so the file was probably crafted. " +
                    "Raise PtReaderOptions.MaxExpandedValues if you trust the file.",
                    entryName);
            }

            return expandedValues;
        }

        void CheckDepth(int depth)
        {
            if (depth > maxDepth)
            {
                throw new PtFormatException(
                    $"{entryName} nests containers more than {maxDepth} deep, the MaxNestingDepth limit. A state dict nests about 4 deep. " +
                    "Raise PtReaderOptions.MaxNestingDepth if you trust the file.",
                    entryName);
            }
        }
    }

    private static bool IsContainer(object? value) =>
        value is object?[] or List<object?> or OrderedDictionary<object, object?> && value is not PickledDefaultDict;

    private static void CheckLeaf(object? value, string entryName)
    {
        if (value is null or bool or long or double or string or Tensor or PythonBoundMethod)
        {
            return;
        }

        string description = value switch
        {
            TorchGlobal global => $"the class or function {global.QualifiedName} itself",
            StorageReference storage => $"a bare {storage} without a tensor",
            PickledObject pickled => $"{pickled} outside the anneal_func of a OneCycleLR state dict",
            PickledDefaultDict => "a defaultdict outside the state of a pickled optimizer",
            _ => $"an object of type {value.GetType().Name}",
        };
        throw new PtFormatException(
            $"{entryName} produces {description} as a value, but a .pt state dict may contain only tensors, numbers, strings, None and containers. " +
            "The file was not written by torch.save from a state dict.",
            entryName);
    }

    private static IEnumerable<object?> Children(object container)
    {
        switch (container)
        {
            case object?[] tuple:
                foreach (object? item in tuple)
                {
                    yield return item;
                }

                break;
            case List<object?> list:
                foreach (object? item in list)
                {
                    yield return item;
                }

                break;
            case OrderedDictionary<object, object?> dict:
                foreach (var (key, value) in dict)
                {
                    yield return key;
                    yield return value;
                }

                if (dict is PythonOrderedDict { Metadata: { } metadata })
                {
                    yield return metadata;
                }

                break;
        }
    }

    private sealed class Frame(object node, IEnumerator<object?> children)
    {
        public object Node { get; } = node;

        public IEnumerator<object?> Children { get; } = children;

        /// <summary>Largest depth of the containers among the children seen so far, or 0 when there are none.</summary>
        public int ChildDepth { get; set; }

        /// <summary>Number of values under the children seen so far, with each shared container counted once per reference.</summary>
        public long ExpandedValues { get; set; }
    }
}
