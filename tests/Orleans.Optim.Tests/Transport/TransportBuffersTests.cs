using System.Buffers;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Networking.Shared;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Tests.Transport;

public sealed class TransportBuffersTests
{
    [Fact]
    public void HooksFindOrleansInternals()
    {
        // Both hooks reach Orleans internals through reflection. If an Orleans update moves them, this fails
        // instead of the transport silently falling back to 4 KiB blocks.
        var services = new ServiceCollection();

        bool both = services.UseLargeTransportBuffers();

        Assert.True(both);
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<SocketConnectionOptions>>().Value;
        var factory = (Func<MemoryPool<byte>>?)typeof(SocketConnectionOptions)
            .GetProperty("MemoryPoolFactory", BindingFlags.Instance | BindingFlags.NonPublic)!
            .GetValue(options);
        Assert.NotNull(factory);
        var inbound = Assert.IsType<TransportBufferPool>(factory());
        Assert.Equal(TransportBufferPool.DefaultBlockBytes, inbound.MaxBufferSize);

        var sharedType = typeof(SocketConnectionOptions).Assembly.GetType("Orleans.Networking.Shared.SharedMemoryPool")!;
        object shared = provider.GetRequiredService(sharedType);
        object? outbound = sharedType.GetField("<Pool>k__BackingField", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(shared);
        Assert.Same(inbound, outbound);
    }

    [Fact]
    public void PoolRentsWholeBlocks()
    {
        using var pool = new TransportBufferPool(8192);

        using var small = pool.Rent(1);
        using var whole = pool.Rent(8192);
        using var unspecified = pool.Rent();

        Assert.Equal(8192, small.Memory.Length);
        Assert.Equal(8192, whole.Memory.Length);
        Assert.Equal(8192, unspecified.Memory.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(8193));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TransportBufferPool(4095));
    }

    [Fact]
    public void PoolReusesReturnedBlockOnce()
    {
        using var pool = new TransportBufferPool(4096);
        var first = pool.Rent();
        var array = first.Memory;

        first.Dispose();
        first.Dispose();
        using var second = pool.Rent();
        using var third = pool.Rent();

        Assert.Throws<ObjectDisposedException>(() => first.Memory);
        Assert.True(second.Memory.Span == array.Span, "The returned block was not reused.");
        Assert.False(third.Memory.Span == array.Span, "A block disposed twice was handed out twice.");
    }
}
