using System.Globalization;
using System.Text;
using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// A learning-rate scheduler as a torch user writes it, without the optimizer: <c>StepLR(step_size=5, gamma=0.5)</c>,
/// or <c>SequentialLR(schedulers=[LinearLR(start_factor=0.1, total_iters=3), CosineAnnealingLR(T_max=17)], milestones=[3])</c>.
/// </summary>
/// <param name="Name">Torch class name, such as <c>StepLR</c>.</param>
/// <param name="Arguments">Keyword arguments with Python-typed values, in order.</param>
/// <param name="Schedulers">For <c>SequentialLR</c>: the schedulers it runs one after another; otherwise empty.</param>
public sealed record SchedulerSpec(string Name, IReadOnlyList<KeyValuePair<string, object?>> Arguments, IReadOnlyList<SchedulerSpec> Schedulers)
{
    private const int MaxNesting = 8;

    /// <summary>
    /// Creates the scheduler against the optimizer's param groups, as torch's constructors do: the children of a
    /// <c>SequentialLR</c> first, in order, then the scheduler itself.
    /// </summary>
    /// <exception cref="NotSupportedException">A scheduler name is not implemented.</exception>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is missing, unknown or invalid.</exception>
    public LRScheduler Build(OptimizerParamGroups groups)
    {
        var arguments = Arguments.ToList();
        if (Schedulers.Count > 0)
        {
            arguments.Add(new("schedulers", Schedulers.Select(child => (object?)child.Build(groups)).ToList()));
        }

        return LRSchedulers.Create(Name, groups, arguments);
    }

    /// <summary>Returns the spec as a Python value tree <c>{'name': ..., 'arguments': {...}, 'schedulers': [...]}</c>.</summary>
    public OrderedDictionary<object, object?> ToPython()
    {
        var arguments = new OrderedDictionary<object, object?>();
        foreach (var (key, value) in Arguments)
        {
            arguments[key] = value;
        }

        return new OrderedDictionary<object, object?>
        {
            ["name"] = Name,
            ["arguments"] = arguments,
            ["schedulers"] = Schedulers.Select(child => (object?)child.ToPython()).ToList(),
        };
    }

    /// <summary>Reads what <see cref="ToPython"/> returned.</summary>
    /// <exception cref="FormatException">The tree is not a scheduler spec.</exception>
    public static SchedulerSpec FromPython(object? value)
    {
        if (value is not OrderedDictionary<object, object?> dict
            || !dict.TryGetValue("name", out object? name) || name is not string text
            || !dict.TryGetValue("arguments", out object? arguments) || arguments is not OrderedDictionary<object, object?> argumentDict
            || !dict.TryGetValue("schedulers", out object? children) || children is not List<object?> childList)
        {
            throw new FormatException($"Expected a scheduler spec with 'name', 'arguments' and 'schedulers', found {PythonValues.TypeName(value)}.");
        }

        return new SchedulerSpec(
            text,
            argumentDict.Select(kv => new KeyValuePair<string, object?>((string)kv.Key, kv.Value)).ToList(),
            childList.Select(FromPython).ToList());
    }

    /// <summary>Formats the spec in torch's call syntax, such as <c>StepLR(step_size=5, gamma=0.5)</c>.</summary>
    public override string ToString()
    {
        var parts = Arguments.Select(kv => kv.Key + "=" + PythonValues.Format(kv.Value)).ToList();
        if (Schedulers.Count > 0)
        {
            parts.Insert(0, "schedulers=[" + string.Join(", ", Schedulers) + "]");
        }

        return $"{Name}({string.Join(", ", parts)})";
    }

    /// <summary>
    /// Parses torch's call syntax with keyword arguments: numbers (<c>5</c> is an int, <c>5.0</c> and <c>1e-3</c>
    /// are floats), <c>True</c>, <c>False</c>, <c>None</c>, quoted strings, lists, tuples, and for
    /// <c>SequentialLR</c> a <c>schedulers=[...]</c> list of nested calls.
    /// </summary>
    /// <exception cref="FormatException">The text is not such a call; the message names the position and what was expected.</exception>
    public static SchedulerSpec Parse(string text)
    {
        var parser = new Parser(text);
        var spec = parser.ParseCall(0);
        parser.ExpectEnd();
        return spec;
    }

    /// <summary>A recursive-descent parser over the call syntax.</summary>
    private sealed class Parser(string text)
    {
        private int _position;

        public SchedulerSpec ParseCall(int depth)
        {
            if (depth > MaxNesting)
            {
                throw Error($"schedulers nested deeper than {MaxNesting} levels");
            }

            string name = ParseIdentifier("a scheduler name such as StepLR");
            Expect('(');
            var arguments = new List<KeyValuePair<string, object?>>();
            var children = new List<SchedulerSpec>();
            SkipSpace();
            while (Peek() != ')')
            {
                string key = ParseIdentifier("a keyword argument such as gamma=0.5");
                Expect('=');
                if (key == "schedulers")
                {
                    children.AddRange(ParseCallList(depth));
                }
                else
                {
                    if (arguments.Any(a => a.Key == key))
                    {
                        throw Error($"argument '{key}' is given twice");
                    }

                    arguments.Add(new(key, ParseValue(depth)));
                }

                SkipSpace();
                if (Peek() == ',')
                {
                    _position++;
                    SkipSpace();
                }
                else if (Peek() != ')')
                {
                    throw Error("expected ',' or ')'");
                }
            }

            _position++;
            return new SchedulerSpec(name, arguments, children);
        }

        public void ExpectEnd()
        {
            SkipSpace();
            if (_position != text.Length)
            {
                throw Error("expected the end of the text");
            }
        }

        private List<SchedulerSpec> ParseCallList(int depth)
        {
            Expect('[');
            var calls = new List<SchedulerSpec>();
            SkipSpace();
            while (Peek() != ']')
            {
                calls.Add(ParseCall(depth + 1));
                SkipSpace();
                if (Peek() == ',')
                {
                    _position++;
                    SkipSpace();
                }
                else if (Peek() != ']')
                {
                    throw Error("expected ',' or ']'");
                }
            }

            _position++;
            return calls;
        }

        private object? ParseValue(int depth)
        {
            SkipSpace();
            char c = Peek();
            if (c is '[' or '(')
            {
                char close = c == '[' ? ']' : ')';
                _position++;
                var items = new List<object?>();
                SkipSpace();
                bool trailingComma = false;
                while (Peek() != close)
                {
                    if (items.Count > 1000)
                    {
                        throw Error("more than 1000 items in a list");
                    }

                    items.Add(ParseValue(depth + 1));
                    SkipSpace();
                    trailingComma = false;
                    if (Peek() == ',')
                    {
                        _position++;
                        trailingComma = true;
                        SkipSpace();
                    }
                    else if (Peek() != close)
                    {
                        throw Error($"expected ',' or '{close}'");
                    }
                }

                _position++;
                if (c == '[')
                {
                    return items;
                }

                // (x) is a parenthesized value in Python; (x,) and (x, y) are tuples.
                return items.Count == 1 && !trailingComma ? items[0] : items.ToArray();
            }

            if (c is '\'' or '"')
            {
                _position++;
                int end = text.IndexOf(c, _position);
                if (end < 0)
                {
                    throw Error("unterminated string");
                }

                string value = text[_position..end];
                _position = end + 1;
                return value;
            }

            if (char.IsAsciiLetter(c))
            {
                string word = ParseIdentifier("a value");
                return word switch
                {
                    "True" => true,
                    "False" => false,
                    "None" => null,
                    _ => throw Error($"unknown value '{word}'; use a number, True, False, None, a string, a list or a tuple"),
                };
            }

            return ParseNumber();
        }

        private object ParseNumber()
        {
            int start = _position;
            while (_position < text.Length && (char.IsAsciiDigit(text[_position]) || text[_position] is '+' or '-' or '.' or 'e' or 'E' or '_'))
            {
                _position++;
            }

            string token = text[start.._position].Replace("_", string.Empty, StringComparison.Ordinal);
            if (token.Length == 0)
            {
                _position = start;
                throw Error("expected a value");
            }

            if (token.IndexOfAny(['.', 'e', 'E']) < 0 && long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long integer))
            {
                return integer;
            }

            if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double number))
            {
                return number;
            }

            _position = start;
            throw Error($"'{token}' is not a number");
        }

        private string ParseIdentifier(string expected)
        {
            SkipSpace();
            int start = _position;
            while (_position < text.Length && (char.IsAsciiLetterOrDigit(text[_position]) || text[_position] == '_'))
            {
                _position++;
            }

            if (_position == start || char.IsAsciiDigit(text[start]))
            {
                _position = start;
                throw Error($"expected {expected}");
            }

            return text[start.._position];
        }

        private void Expect(char c)
        {
            SkipSpace();
            if (Peek() != c)
            {
                throw Error($"expected '{c}'");
            }

            _position++;
        }

        private char Peek() => _position < text.Length ? text[_position] : '\0';

        private void SkipSpace()
        {
            while (_position < text.Length && char.IsWhiteSpace(text[_position]))
            {
                _position++;
            }
        }

        private FormatException Error(string reason)
        {
            var pointer = new StringBuilder(text).Append('\n').Append(' ', Math.Min(_position, text.Length)).Append('^');
            return new FormatException(
                $"Invalid scheduler '{text}' at position {_position}: {reason}. Write it as torch does without the optimizer, " +
                $"such as StepLR(step_size=5, gamma=0.5).\n{pointer}");
        }
    }
}
