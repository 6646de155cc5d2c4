using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Orleans.Serialization;
using Orleans.Serialization.Buffers;
using Orleans.Serialization.Cloning;
using Orleans.Serialization.Codecs;
using Orleans.Serialization.WireProtocol;

namespace Orleans.Optim.Wire;

/// <summary>
/// The float32 values of one tensor slice in a grain call. <see cref="FloatPayloadCodec"/> sends them as raw
/// little-endian bytes in one block copy from the array they are in. It reads them in one block copy into an array
/// rented from <see cref="ArrayPool{T}.Shared"/>, which the receiver then uses, or into an open
/// <see cref="ReplyDestination"/>.
/// </summary>
/// <remarks>
/// <para>A payload is one of four kinds, and none of them is copied when Orleans copies the arguments or result of a call:</para>
/// <list type="bullet">
/// <item><description>
/// Borrowed (<see cref="Borrow"/>): a view of the sender's array. The sender must leave those elements unchanged
/// until <see cref="Released"/> completes: when the codec has written them, or a receiver in the same process has
/// copied them with <see cref="CopyTo"/> or <see cref="TakeOrCopy"/>.
/// </description></item>
/// <item><description>
/// Received (what the codec reads): owns an array rented from <see cref="ArrayPool{T}.Shared"/>, at least
/// <see cref="Length"/> long. The receiver takes it with <see cref="TakeOrCopy"/> or returns it with
/// <see cref="Dispose"/>. When the payload is sent on, the codec returns the array once it has written it.
/// </description></item>
/// <item><description>
/// Delivered (what the codec reads for an open <see cref="ReplyDestination"/> of its <see cref="DestinationToken"/>):
/// a view of that destination, whose array already contains the values; see <see cref="WasDeliveredTo"/>.
/// </description></item>
/// <item><description>
/// Shared (<see cref="Share"/>): a view of values that several payloads send, such as a shard's new values that go
/// to every rank; see <see cref="SharedFloatSource"/>.
/// </description></item>
/// </list>
/// </remarks>
public sealed class FloatPayload : IDisposable
{
    private readonly int _offset;
    private readonly SharedFloatSource? _shared;
    private TaskCompletionSource? _released;
    private float[]? _array;
    private ReplyDestination? _deliveredTo;

    private FloatPayload(float[]? array, int offset, int length, bool owned, SharedFloatSource? shared, long replyToken, long destinationToken)
    {
        _array = array;
        _offset = offset;
        Length = length;
        IsOwned = owned;
        _shared = shared;
        ReplyToken = replyToken;
        DestinationToken = destinationToken;
    }

    /// <summary>Number of float32 values.</summary>
    public int Length { get; }

    /// <summary>Whether the payload owns a pooled array: it was received through the codec, but not into a <see cref="ReplyDestination"/>.</summary>
    public bool IsOwned { get; }

    /// <summary>
    /// Token of the <see cref="ReplyDestination"/> that the reply to this payload's call should be read into, or 0 for
    /// none. The receiver passes it on as the reply's <see cref="DestinationToken"/>.
    /// </summary>
    public long ReplyToken { get; }

    /// <summary>Token of the <see cref="ReplyDestination"/> in the receiving process that this payload is read into, or 0 for none.</summary>
    public long DestinationToken { get; }

    /// <summary>
    /// Completes when a borrowed payload's elements were written or copied, so that the sender may change them again.
    /// For the other kinds and for an empty payload it is complete from the start.
    /// </summary>
    public Task Released => _released?.Task ?? Task.CompletedTask;

    /// <summary>Returns a payload without values, which a step push uses for a parameter without a gradient.</summary>
    /// <param name="replyToken">Token of the destination of the reply's values, or 0.</param>
    public static FloatPayload Empty(long replyToken = 0) => Borrow([], 0, 0, replyToken);

    /// <summary>Returns a borrowed payload of <paramref name="length"/> elements of <paramref name="array"/> from <paramref name="offset"/>.</summary>
    /// <param name="array">The sender's array.</param>
    /// <param name="offset">Index of the first element.</param>
    /// <param name="length">Number of elements.</param>
    /// <param name="replyToken">Token of the destination of the reply's values, or 0.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the array.</exception>
    public static FloatPayload Borrow(float[] array, int offset, int length, long replyToken = 0)
    {
        ArgumentNullException.ThrowIfNull(array);
        if ((uint)offset > (uint)array.Length || (uint)length > (uint)(array.Length - offset))
        {
            throw new ArgumentOutOfRangeException(
                nameof(length),
                $"Elements {offset}..{(long)offset + length} do not lie within an array of {array.Length} elements; pass a range inside the array.");
        }

        return new FloatPayload(array, offset, length, owned: false, shared: null, replyToken, destinationToken: 0)
        {
            _released = length == 0 ? null : new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously),
        };
    }

    /// <summary>Returns a payload that sends the values of <paramref name="source"/>.</summary>
    /// <param name="source">The values.</param>
    /// <param name="destinationToken">The <see cref="ReplyToken"/> of the call this payload replies to, or 0.</param>
    public static FloatPayload Share(SharedFloatSource source, long destinationToken = 0)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new FloatPayload(null, 0, source.Length, owned: false, shared: source, replyToken: 0, destinationToken);
    }

    /// <summary>
    /// Returns a received payload for the codec to fill: the open destination of <paramref name="destinationToken"/>
    /// when it has <paramref name="length"/> elements, or otherwise a rented array.
    /// </summary>
    internal static FloatPayload Receive(int length, long replyToken, long destinationToken)
    {
        if (ReplyDestination.TryBeginWrite(destinationToken, length) is { } destination)
        {
            return new FloatPayload(destination.Array, destination.Offset, length, owned: false, shared: null, replyToken, destinationToken)
            {
                _deliveredTo = destination,
            };
        }

        return new(length == 0 ? [] : ArrayPool<float>.Shared.Rent(length), 0, length, owned: true, shared: null, replyToken, destinationToken);
    }

    /// <summary>The values of a received payload, for the codec to fill.</summary>
    internal Span<float> ReceiveSpan => _array.AsSpan(_offset, Length);

    /// <summary>Ends the codec's read of a received payload.</summary>
    internal void EndReceive(bool completed)
    {
        _deliveredTo?.EndWrite(completed);
        if (!completed)
        {
            Dispose();
        }
    }

    /// <summary>Returns whether the codec read the values straight into <paramref name="destination"/>, so that they need no copy.</summary>
    public bool WasDeliveredTo(ReplyDestination destination) => _deliveredTo is not null && ReferenceEquals(_deliveredTo, destination);

    /// <summary>Copies the values into <paramref name="destination"/>, which must have exactly <see cref="Length"/> elements.</summary>
    /// <exception cref="ArgumentException">The destination's length differs.</exception>
    /// <exception cref="ObjectDisposedException">A received payload was disposed of or taken.</exception>
    /// <exception cref="InvalidOperationException">A shared payload's source no longer has its values; see <see cref="SharedFloatSource.Detach"/>.</exception>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length != Length)
        {
            throw new ArgumentException(
                $"Expected a destination of {Length} float32 values, found {destination.Length}; pass a span of the payload's length.", nameof(destination));
        }

        if (_shared is not null)
        {
            _shared.CopyTo(destination);
            return;
        }

        Values.CopyTo(destination);
        _released?.TrySetResult();
    }

    /// <summary>
    /// Returns the values in an array rented from <see cref="ArrayPool{T}.Shared"/> that the caller owns and returns to
    /// that pool: a received payload's own array, without a copy, or otherwise a copy.
    /// </summary>
    /// <returns>An array of at least <see cref="Length"/> elements whose first <see cref="Length"/> are the values.</returns>
    /// <exception cref="ObjectDisposedException">A received payload was disposed of or taken already.</exception>
    public float[] TakeOrCopy()
    {
        if (IsOwned)
        {
            return Interlocked.Exchange(ref _array, null) ?? throw Gone();
        }

        float[] copy = ArrayPool<float>.Shared.Rent(Length);
        CopyTo(copy.AsSpan(0, Length));
        return copy;
    }

    /// <summary>Returns a received payload's array to the pool, unless it was taken. Does nothing for the other kinds.</summary>
    public void Dispose()
    {
        if (IsOwned && Interlocked.Exchange(ref _array, null) is { Length: > 0 } array)
        {
            ArrayPool<float>.Shared.Return(array);
        }
    }

    /// <summary>Writes the values as raw bytes; called by the codec.</summary>
    internal void WriteBytes<TBufferWriter>(ref Writer<TBufferWriter> writer)
        where TBufferWriter : IBufferWriter<byte>
    {
        if (_shared is not null)
        {
            _shared.WriteBytes(ref writer);
            return;
        }

        writer.Write(MemoryMarshal.AsBytes(Values));
        _released?.TrySetResult();

        // A received payload is written only when Orleans sends it on, as a gateway silo forwards a call to the silo of
        // its grain. Orleans writes a message at most once (by its source, main branch of August 2026, a message already
        // written to a failed connection is rejected, not re-sent), so the array goes back to the pool now, as
        // Orleans' PooledBufferCodec does with a PooledBuffer.
        Dispose();
    }

    private ReadOnlySpan<float> Values => (_array ?? throw Gone()).AsSpan(_offset, Length);

    private static ObjectDisposedException Gone() =>
        new(nameof(FloatPayload), "The received values were already taken or disposed of; take them once, with TakeOrCopy or CopyTo before Dispose.");
}

/// <summary>
/// Values that several <see cref="FloatPayload"/>s send without a copy each, while their owner may change them later:
/// a shard's new values, which go to every rank of a step and which the next step updates in place.
/// </summary>
/// <remarks>
/// Every payload reads the values under a lock. Before its owner changes the values, it calls <see cref="Detach"/>:
/// if every expected receiver has read them by then, the source drops them; otherwise it keeps a copy for the
/// receivers still to come. So no receiver ever gets values of a later step, and the values are copied only when a
/// reply is still unsent at the next update.
/// </remarks>
public sealed class SharedFloatSource
{
    private readonly object _gate = new();
    private readonly int _receivers;
    private float[]? _values;
    private bool _detached;
    private int _reads;

    /// <summary>Creates a source of the first <paramref name="length"/> elements of <paramref name="values"/>, for <paramref name="receivers"/> payloads.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The length exceeds the array, or the receiver count is below 1.</exception>
    public SharedFloatSource(float[] values, int length, int receivers)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)length, (uint)values.Length, nameof(length));
        ArgumentOutOfRangeException.ThrowIfLessThan(receivers, 1);
        _values = values;
        Length = length;
        _receivers = receivers;
    }

    /// <summary>Number of float32 values.</summary>
    public int Length { get; }

    /// <summary>Number of times a payload has read the values so far.</summary>
    public int Reads
    {
        get
        {
            lock (_gate)
            {
                return _reads;
            }
        }
    }

    /// <summary>Whether <see cref="Detach"/> had to copy the values, because a receiver had not read them yet.</summary>
    public bool Copied
    {
        get
        {
            lock (_gate)
            {
                return _detached && _values is not null;
            }
        }
    }

    /// <summary>
    /// Releases the owner's array before the owner changes it: drops it when every receiver has read the values, or
    /// replaces it with a copy for those still to come. Returns once no payload reads the owner's array any more.
    /// </summary>
    public void Detach()
    {
        lock (_gate)
        {
            if (_detached)
            {
                return;
            }

            _detached = true;
            _values = _reads >= _receivers ? null : _values!.AsSpan(0, Length).ToArray();
        }
    }

    /// <summary>Drops the owner's array when every expected receiver has read the values.</summary>
    /// <returns>Whether the source no longer reads the owner's array: it dropped it now or was detached before.</returns>
    public bool TryRelease()
    {
        lock (_gate)
        {
            if (!_detached && _reads >= _receivers)
            {
                _detached = true;
                _values = null;
            }

            return _detached;
        }
    }

    internal void CopyTo(Span<float> destination)
    {
        lock (_gate)
        {
            Current().CopyTo(destination);
            _reads++;
        }
    }

    internal void WriteBytes<TBufferWriter>(ref Writer<TBufferWriter> writer)
        where TBufferWriter : IBufferWriter<byte>
    {
        lock (_gate)
        {
            writer.Write(MemoryMarshal.AsBytes(Current()));
            _reads++;
        }
    }

    private ReadOnlySpan<float> Current() =>
        (_values ?? throw new InvalidOperationException(
            $"The shared values were already read by all {_receivers} receivers and then released; a payload is read once per receiver.")).AsSpan(0, Length);
}

/// <summary>
/// A range of a caller's array that the values of a reply are read into straight from the received message, without
/// a pooled array in between. The reply finds it by the <see cref="Token"/> that the request carried as its
/// <see cref="FloatPayload.ReplyToken"/>.
/// </summary>
/// <remarks>
/// A destination takes at most one write, of exactly its length, and none once it is disposed of:
/// <see cref="Dispose"/> waits for a write in progress to end. Tokens are unique within the process, and the process's
/// open destinations are kept in a static table until they are disposed of.
/// </remarks>
public sealed class ReplyDestination : IDisposable
{
    private const int Open = 0;
    private const int Writing = 1;
    private const int Written = 2;
    private const int Closed = 3;

    private static readonly ConcurrentDictionary<long, ReplyDestination> s_open = new();
    private static long s_lastToken;
    private int _state;

    /// <summary>Opens a destination of <paramref name="length"/> elements of <paramref name="array"/> from <paramref name="offset"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the array.</exception>
    public ReplyDestination(float[] array, int offset, int length)
    {
        ArgumentNullException.ThrowIfNull(array);
        if ((uint)offset > (uint)array.Length || (uint)length > (uint)(array.Length - offset))
        {
            throw new ArgumentOutOfRangeException(
                nameof(length),
                $"Elements {offset}..{(long)offset + length} do not lie within an array of {array.Length} elements; pass a range inside the array.");
        }

        Array = array;
        Offset = offset;
        Length = length;
        Token = Interlocked.Increment(ref s_lastToken);
        s_open[Token] = this;
    }

    /// <summary>Token that a request passes as its payload's <see cref="FloatPayload.ReplyToken"/>.</summary>
    public long Token { get; }

    /// <summary>Number of float32 values the destination takes.</summary>
    public int Length { get; }

    /// <summary>Whether a reply's values were written into the destination completely.</summary>
    public bool IsWritten => Volatile.Read(ref _state) == Written;

    internal float[] Array { get; }

    internal int Offset { get; }

    /// <summary>Closes the destination; returns once no write into it is in progress.</summary>
    public void Dispose()
    {
        s_open.TryRemove(Token, out _);
        if (Interlocked.CompareExchange(ref _state, Closed, Open) == Writing)
        {
            var wait = default(SpinWait);
            while (Volatile.Read(ref _state) == Writing)
            {
                wait.SpinOnce();
            }
        }
    }

    /// <summary>Returns the open destination of <paramref name="token"/> for one write when it has <paramref name="length"/> elements, or <see langword="null"/>.</summary>
    internal static ReplyDestination? TryBeginWrite(long token, int length)
    {
        if (token == 0 || !s_open.TryRemove(token, out var destination))
        {
            return null;
        }

        if (destination.Length != length || Interlocked.CompareExchange(ref destination._state, Writing, Open) != Open)
        {
            return null;
        }

        return destination;
    }

    internal void EndWrite(bool completed) => Volatile.Write(ref _state, completed ? Written : Closed);
}

/// <summary>
/// Serializer of <see cref="FloatPayload"/>: a length-prefixed field of the values' raw float32 bytes, written and
/// read in block copies without an intermediate buffer.
/// </summary>
/// <remarks>
/// The field contains the byte count, then the payload's <see cref="FloatPayload.ReplyToken"/> and
/// <see cref="FloatPayload.DestinationToken"/> as 64-bit little-endian integers, then the values.
/// </remarks>
[RegisterSerializer]
public sealed class FloatPayloadCodec : IFieldCodec<FloatPayload>
{
    private const int HeaderBytes = 2 * sizeof(long);

    /// <summary>Maximum number of values of one payload, so that the field's byte count fits in 31 bits.</summary>
    public const int MaxLength = (int.MaxValue - HeaderBytes) / sizeof(float);

    /// <inheritdoc/>
    public void WriteField<TBufferWriter>(ref Writer<TBufferWriter> writer, uint fieldIdDelta, Type? expectedType, FloatPayload? value)
        where TBufferWriter : IBufferWriter<byte>
    {
        if (ReferenceCodec.TryWriteReferenceField(ref writer, fieldIdDelta, expectedType, value))
        {
            return;
        }

        CheckLittleEndian();
        if (value.Length > MaxLength)
        {
            throw new InvalidOperationException(
                $"A float payload of {value.Length} values is too large for one message: send at most {MaxLength} values per payload.");
        }

        writer.WriteFieldHeader(fieldIdDelta, expectedType, typeof(FloatPayload), WireType.LengthPrefixed);
        writer.WriteVarUInt32((uint)(HeaderBytes + (value.Length * sizeof(float))));
        Span<byte> header = stackalloc byte[HeaderBytes];
        BinaryPrimitives.WriteInt64LittleEndian(header, value.ReplyToken);
        BinaryPrimitives.WriteInt64LittleEndian(header[sizeof(long)..], value.DestinationToken);
        writer.Write(header);
        value.WriteBytes(ref writer);
    }

    /// <inheritdoc/>
    public FloatPayload? ReadValue<TInput>(ref Reader<TInput> reader, Field field)
    {
        if (field.WireType == WireType.Reference)
        {
            return ReferenceCodec.ReadReference<FloatPayload, TInput>(ref reader, field);
        }

        CheckLittleEndian();
        field.EnsureWireType(WireType.LengthPrefixed);
        uint bytes = reader.ReadVarUInt32();
        if (bytes < HeaderBytes || (bytes - HeaderBytes) % sizeof(float) != 0 || bytes > int.MaxValue)
        {
            throw new InvalidOperationException(
                $"A float payload of {bytes} bytes is invalid: expected {HeaderBytes} bytes of tokens and then float32 values, up to {int.MaxValue} bytes. " +
                "The sender wrote a different format; run the same version of Orleans.Optim on both sides.");
        }

        reader.EnsureAvailable(bytes);
        Span<byte> header = stackalloc byte[HeaderBytes];
        reader.ReadBytes(header);
        var result = FloatPayload.Receive(
            (int)((bytes - HeaderBytes) / sizeof(float)),
            BinaryPrimitives.ReadInt64LittleEndian(header),
            BinaryPrimitives.ReadInt64LittleEndian(header[sizeof(long)..]));
        bool completed = false;
        try
        {
            reader.ReadBytes(MemoryMarshal.AsBytes(result.ReceiveSpan));
            completed = true;
        }
        finally
        {
            result.EndReceive(completed);
        }

        ReferenceCodec.RecordObject(reader.Session, result);
        return result;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Float payloads are sent as little-endian bytes; this process runs on a big-endian machine.");
        }
    }
}

/// <summary>
/// Copier of <see cref="FloatPayload"/>: returns the payload itself, as Orleans does for <see cref="PooledBuffer"/>.
/// </summary>
/// <remarks>
/// Orleans copies the arguments of every call and the result of every call, local or remote. A real copy here would
/// add a copy of every tensor to every remote call. A payload is safe to share instead: a shard copies a borrowed
/// gradient into its own array when it receives it (<see cref="FloatPayload.TakeOrCopy"/>), and a shared payload reads
/// its source under a lock that the source's owner takes before it changes the values.
/// </remarks>
[RegisterCopier]
public sealed class FloatPayloadCopier : IDeepCopier<FloatPayload>, IOptionalDeepCopier
{
    /// <inheritdoc/>
    public FloatPayload? DeepCopy(FloatPayload? input, CopyContext context) => input;

    /// <inheritdoc/>
    public bool IsShallowCopyable() => true;
}
