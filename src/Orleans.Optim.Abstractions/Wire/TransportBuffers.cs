using System.Buffers;
using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Networking.Shared;

namespace Orleans.Optim.Wire;

/// <summary>
/// Gives Orleans' socket transport buffer blocks of <see cref="TransportBufferPool.DefaultBlockBytes"/> in place of
/// its 4 KiB blocks, so that a connection receives a large message in few socket reads.
/// </summary>
/// <remarks>
/// <para>
/// Orleans 10.4's socket transport reads from a socket into one pipe block at a time, and its memory pool hands out
/// 4 KiB blocks. A shard's 4 MiB gradient then takes more than a thousand socket reads and pipe wake-ups, and the
/// message serializer buffers a large body in 4 KiB blocks before it copies it into the pipe. With 256 KiB blocks a
/// read takes whatever the socket holds, up to a block. In <c>client bench step</c> on a 2-core machine, this raised
/// a 10M-parameter step's payload throughput from about 0.2 to about 0.35 of a loopback TCP transfer's (see the
/// step section of BENCHMARKS.md).
/// </para>
/// <para>
/// Orleans has no public setting for this. Inbound connections take their pool from the internal
/// <c>SocketConnectionOptions.MemoryPoolFactory</c>, and outbound connections and the message serializer from the
/// internal singleton <c>SharedMemoryPool</c>. Both are reached through reflection here. Where either is missing, as
/// in another Orleans version, that part keeps Orleans' own pool and everything still works, only slower.
/// </para>
/// </remarks>
public static class TransportBuffers
{
    private const string SharedMemoryPoolTypeName = "Orleans.Networking.Shared.SharedMemoryPool";

    /// <summary>
    /// Registers one <see cref="TransportBufferPool"/> for the inbound and outbound connections of the silo or client
    /// whose services these are.
    /// </summary>
    /// <returns>Whether both the inbound and the outbound transport use the pool; see the remarks of the class.</returns>
    public static bool UseLargeTransportBuffers(this IServiceCollection services, int blockBytes = TransportBufferPool.DefaultBlockBytes)
    {
        var pool = new TransportBufferPool(blockBytes);

        // NOTE: both hooks depend on Orleans internals, checked against Orleans 10.4.2. TransportBuffersTests fails
        // when an update moves them.
        var factoryProperty = typeof(SocketConnectionOptions).GetProperty("MemoryPoolFactory", BindingFlags.Instance | BindingFlags.NonPublic);
        if (factoryProperty?.PropertyType == typeof(Func<MemoryPool<byte>>))
        {
            services.Configure<SocketConnectionOptions>(options => factoryProperty.SetValue(options, (Func<MemoryPool<byte>>)(() => pool)));
        }

        var sharedType = typeof(SocketConnectionOptions).Assembly.GetType(SharedMemoryPoolTypeName);
        var poolField = sharedType?.GetField("<Pool>k__BackingField", BindingFlags.Instance | BindingFlags.NonPublic);
        bool outbound = sharedType is not null && poolField?.FieldType == typeof(MemoryPool<byte>);
        if (outbound)
        {
            services.AddSingleton(sharedType!, _ =>
            {
                object shared = Activator.CreateInstance(sharedType!, nonPublic: true)!;
                poolField!.SetValue(shared, pool);
                return shared;
            });
        }

        return factoryProperty is not null && outbound;
    }
}

/// <summary>
/// A thread-safe pool of pinned byte blocks of one size, for the pipes of Orleans' socket transport. A rented
/// block goes back to the pool when its owner is disposed.
/// </summary>
public sealed class TransportBufferPool : MemoryPool<byte>
{
    /// <summary>Default block size: 256 KiB, a little more than Linux's default socket receive buffer (208 KiB).</summary>
    public const int DefaultBlockBytes = 256 * 1024;

    /// <summary>Maximum number of free blocks the pool keeps. Blocks returned beyond it are left to the garbage collector.</summary>
    public const int MaxRetainedBlocks = 64;

    private readonly ConcurrentQueue<byte[]> _free = new();
    private readonly int _blockBytes;

    /// <summary>Creates a pool of blocks of <paramref name="blockBytes"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The block size is below 4,096 bytes.</exception>
    public TransportBufferPool(int blockBytes = DefaultBlockBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockBytes, 4096);
        _blockBytes = blockBytes;
    }

    /// <inheritdoc/>
    public override int MaxBufferSize => _blockBytes;

    /// <summary>Returns a block of <see cref="MaxBufferSize"/> bytes, whatever the requested size up to it.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBufferSize"/> exceeds <see cref="MaxBufferSize"/>.</exception>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, _blockBytes);
        if (!_free.TryDequeue(out byte[]? block))
        {
            block = GC.AllocateUninitializedArray<byte>(_blockBytes, pinned: true);
        }

        return new Block(this, block);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        _free.Clear();
    }

    private void Return(byte[] block)
    {
        if (_free.Count < MaxRetainedBlocks)
        {
            _free.Enqueue(block);
        }
    }

    private sealed class Block(TransportBufferPool pool, byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } returned)
            {
                pool.Return(returned);
            }
        }
    }
}
