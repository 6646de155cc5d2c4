using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Wire;
using Orleans.Serialization;
using Orleans.Serialization.Cloning;

namespace Orleans.Optim.Tests.Transport;

public sealed class FloatPayloadTests
{
    private static readonly ServiceProvider s_services = new ServiceCollection()
        .AddSerializer(builder => builder.AddAssembly(typeof(FloatPayload).Assembly))
        .BuildServiceProvider();

    private static Serializer Serializer => s_services.GetRequiredService<Serializer>();

    public static TheoryData<int> Lengths => new() { 0, 1, 7, 1023, 300_001 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void CodecRoundTripKeepsBits(int length)
    {
        float[] values = Values(length);
        var sent = FloatPayload.Borrow(values, 0, length);

        byte[] bytes = Serializer.SerializeToArray(sent);
        using var received = Serializer.Deserialize<FloatPayload>(bytes)!;

        Assert.True(sent.Released.IsCompletedSuccessfully, "A borrowed payload was not released after it was written.");
        Assert.True(received.IsOwned);
        Assert.Equal(length, received.Length);
        var copy = new float[length];
        received.CopyTo(copy);
        AssertSameBits(values, copy);

        // The bytes are written as one block: the message contains the values' bytes plus two tokens and a few bytes of framing.
        Assert.InRange(bytes.Length, length * sizeof(float), length * sizeof(float) + 32);
    }

    [Fact]
    public void CodecReadsAcrossSegmentsOfAnyLength()
    {
        // 1.2 MB in segments of 4,093 bytes, so that segment ends fall inside floats, as socket reads do.
        float[] values = Values(300_001);
        byte[] bytes = Serializer.SerializeToArray(new StepReply(FloatPayload.Borrow(values, 1, 300_000), Skipped: true));

        var reply = Serializer.Deserialize<StepReply>(Segmented(bytes, 4093))!;

        Assert.True(reply.Skipped);
        float[] taken = reply.Values.TakeOrCopy();
        try
        {
            AssertSameBits(values.AsSpan(1), taken.AsSpan(0, 300_000));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(taken);
        }

        var error = Assert.Throws<ObjectDisposedException>(() => reply.Values.CopyTo(new float[300_000]));
        Assert.Contains("already taken or disposed of", error.Message);
    }

    [Fact]
    public void ReceivedPayloadSentOnOnce()
    {
        // A gateway silo deserializes a call for a grain on another silo and serializes it again.
        float[] values = Values(1000);
        var received = Serializer.Deserialize<FloatPayload>(Serializer.SerializeToArray(FloatPayload.Borrow(values, 0, 1000, replyToken: 42)))!;

        byte[] forwarded = Serializer.SerializeToArray(received);
        using var final = Serializer.Deserialize<FloatPayload>(forwarded)!;

        Assert.Equal(42, final.ReplyToken);
        var copy = new float[1000];
        final.CopyTo(copy);
        AssertSameBits(values, copy);
        Assert.Throws<ObjectDisposedException>(() => received.CopyTo(new float[1000]));
    }

    [Fact]
    public void ReplyReadStraightIntoDestination()
    {
        float[] values = Values(300_000);
        byte[] bytes = Serializer.SerializeToArray(Reply(values));
        float[] target = new float[300_002];
        target[0] = 5f;
        target[^1] = 6f;
        using var destination = new ReplyDestination(target, 1, 300_000);
        byte[] addressed = Serializer.SerializeToArray(Reply(values, destination.Token));

        using var received = Serializer.Deserialize<FloatPayload>(Segmented(addressed, 4093))!;

        Assert.True(received.WasDeliveredTo(destination));
        Assert.True(destination.IsWritten);
        Assert.False(received.IsOwned);
        AssertSameBits(values, target.AsSpan(1, 300_000));
        Assert.Equal(5f, target[0]);
        Assert.Equal(6f, target[^1]);
        Assert.Equal(bytes.Length, addressed.Length);
    }

    [Fact]
    public void ClosedOrMismatchedDestinationGetsNoWrite()
    {
        float[] values = Values(100);
        float[] target = new float[100];
        var closed = new ReplyDestination(target, 0, 100);
        using var shorter = new ReplyDestination(target, 0, 99);
        closed.Dispose();

        using var toClosed = Serializer.Deserialize<FloatPayload>(Serializer.SerializeToArray(Reply(values, closed.Token)))!;
        using var toShorter = Serializer.Deserialize<FloatPayload>(Serializer.SerializeToArray(Reply(values, shorter.Token)))!;

        Assert.False(toClosed.WasDeliveredTo(closed));
        Assert.False(toShorter.WasDeliveredTo(shorter));
        Assert.False(closed.IsWritten);
        Assert.False(shorter.IsWritten);
        Assert.True(toClosed.IsOwned);
        Assert.True(toShorter.IsOwned);
        Assert.All(target, value => Assert.Equal(0f, value));
        var copy = new float[100];
        toShorter.CopyTo(copy);
        AssertSameBits(values, copy);
    }

    [Fact]
    public void BorrowedPayloadCopiedOnLocalReceipt()
    {
        // Orleans copies every call's arguments, and the copier passes a payload on. So a receiver in the same process
        // takes a copy of a borrowed gradient, and the sender may change its array once the payload is released.
        float[] gradient = Values(1000);
        float[] original = (float[])gradient.Clone();
        var payload = FloatPayload.Borrow(gradient, 0, gradient.Length);
        var copied = s_services.GetRequiredService<DeepCopier>().Copy(payload);

        float[] taken = copied.TakeOrCopy();
        Assert.True(payload.Released.IsCompletedSuccessfully);
        gradient.AsSpan().Fill(float.NaN);

        AssertSameBits(original, taken.AsSpan(0, original.Length));
        ArrayPool<float>.Shared.Return(taken);
    }

    [Fact]
    public void SharedSourceCopiesOnlyForUnreadReceivers()
    {
        float[] values = Values(1000);
        float[] original = (float[])values.Clone();
        var source = new SharedFloatSource(values, 999, receivers: 2);
        var first = FloatPayload.Share(source);
        var second = FloatPayload.Share(source);

        var firstCopy = new float[999];
        first.CopyTo(firstCopy);
        source.Detach();
        values.AsSpan().Fill(-1f);
        var secondCopy = new float[999];
        second.CopyTo(secondCopy);

        Assert.True(source.Copied, "The source dropped values that a receiver had not read yet.");
        Assert.Equal(2, source.Reads);
        AssertSameBits(original.AsSpan(0, 999), firstCopy);
        AssertSameBits(original.AsSpan(0, 999), secondCopy);
    }

    [Fact]
    public void FullyReadSourceReleasedWithoutCopy()
    {
        float[] values = Values(10);
        var source = new SharedFloatSource(values, 10, receivers: 1);
        var payload = FloatPayload.Share(source);
        Assert.False(source.TryRelease());
        byte[] bytes = Serializer.SerializeToArray(payload);

        Assert.True(source.TryRelease());
        source.Detach();

        Assert.False(source.Copied);
        using var received = Serializer.Deserialize<FloatPayload>(bytes)!;
        var copy = new float[10];
        received.CopyTo(copy);
        AssertSameBits(values, copy);
        var error = Assert.Throws<InvalidOperationException>(() => payload.CopyTo(new float[10]));
        Assert.Contains("already read by all 1 receivers", error.Message);
    }

    [Fact]
    public void BadRangesAndLengthsAreRejected()
    {
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => FloatPayload.Borrow(new float[4], 2, 3));
        Assert.Contains("Elements 2..5 do not lie within an array of 4 elements", range.Message);

        var destination = Assert.Throws<ArgumentException>(() => FloatPayload.Borrow(new float[4], 0, 4).CopyTo(new float[3]));
        Assert.Contains("Expected a destination of 4 float32 values, found 3", destination.Message);
    }

    [Theory]
    [InlineData(GradientReduction.Mean)]
    [InlineData(GradientReduction.Sum)]
    public void InPlaceReductionKeepsBits(GradientReduction reduction)
    {
        var random = new Random(5);
        float[]?[] perRank = [null, Random(random, 1001), Random(random, 1001), null, Random(random, 1001)];
        var expected = new float[1000];
        GradientReducer.Reduce(perRank, reduction, expected);

        float[]? result = GradientReducer.ReduceInPlace(perRank, reduction, 1000);

        Assert.Same(perRank[1], result);
        AssertSameBits(expected, result.AsSpan(0, 1000));
        Assert.Null(GradientReducer.ReduceInPlace([null, null], reduction, 1000));
    }

    /// <summary>Returns a shard's reply payload of <paramref name="values"/> for one receiver.</summary>
    private static FloatPayload Reply(float[] values, long destinationToken = 0) =>
        FloatPayload.Share(new SharedFloatSource(values, values.Length, receivers: 1), destinationToken);

    /// <summary>Values with bit patterns a conversion could lose: a NaN payload, negative zero, infinities and a subnormal.</summary>
    private static float[] Values(int length)
    {
        float[] special =
        [
            BitConverter.Int32BitsToSingle(0x7FC1_2345), -0f, float.NegativeInfinity, float.PositiveInfinity,
            BitConverter.Int32BitsToSingle(0x0000_0001), BitConverter.Int32BitsToSingle(unchecked((int)0xFFBF_FFFF)),
        ];
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = i < special.Length ? special[i] : (i * 0.37f) - 11f;
        }

        return values;
    }

    private static float[] Random(Random random, int length) =>
        Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    private static void AssertSameBits(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.True(
            MemoryMarshal.AsBytes(expected).SequenceEqual(MemoryMarshal.AsBytes(actual)),
            "The bits of the values differ.");
    }

    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int segmentBytes)
    {
        var first = new Segment(bytes.AsMemory(0, Math.Min(segmentBytes, bytes.Length)), 0);
        var last = first;
        for (int offset = segmentBytes; offset < bytes.Length; offset += segmentBytes)
        {
            last = last.Append(bytes.AsMemory(offset, Math.Min(segmentBytes, bytes.Length - offset)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
