using System.Net;
using System.Net.Sockets;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// The step benchmark's baseline: a plain TCP connection on 127.0.0.1 that carries a step's payload, the same bytes
/// in then the same bytes back, with no serialization and no Orleans.
/// </summary>
/// <remarks>
/// One round sends <see cref="PayloadBytes"/> bytes to a server thread of this process, which reads all of them and
/// then sends them back; the round ends when the client has read the last byte. Each side sends from and receives
/// into an array of the whole payload, as a step's gradients and parameters are, so that no side gains from a small
/// buffer that stays in the caches. The connection stays open across rounds, as Orleans keeps its connections, and
/// both sides move the data in calls of at most <see cref="ChunkBytes"/> bytes.
/// </remarks>
public sealed class LoopbackTransfer : IDisposable
{
    /// <summary>Bytes of one socket write or read.</summary>
    public const int ChunkBytes = 1 << 20;

    /// <summary>
    /// Time limit of one socket write or read, so that a round whose other end failed ends with an error instead of
    /// waiting forever.
    /// </summary>
    public static readonly TimeSpan SocketTimeout = TimeSpan.FromMinutes(1);

    private readonly TcpListener _listener;
    private readonly Socket _client;
    private readonly Socket _server;
    private readonly byte[] _clientSent;
    private readonly byte[] _clientReceived;
    private readonly byte[] _serverBuffer;

    /// <summary>Opens the connection for rounds of <paramref name="payloadBytes"/> bytes each way.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The payload is empty or larger than an array can be.</exception>
    public LoopbackTransfer(long payloadBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(payloadBytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadBytes, Array.MaxLength);
        PayloadBytes = payloadBytes;
        _clientSent = new byte[payloadBytes];
        _clientReceived = new byte[payloadBytes];
        _serverBuffer = new byte[payloadBytes];
        new Random(5).NextBytes(_clientSent);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        int timeout = (int)SocketTimeout.TotalMilliseconds;
        _client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        {
            NoDelay = true,
            SendTimeout = timeout,
            ReceiveTimeout = timeout,
        };
        _client.Connect((IPEndPoint)_listener.LocalEndpoint);
        _server = _listener.AcceptSocket();
        _server.NoDelay = true;
        _server.SendTimeout = timeout;
        _server.ReceiveTimeout = timeout;
    }

    /// <summary>Bytes that each direction carries per round.</summary>
    public long PayloadBytes { get; }

    /// <summary>Runs one round: the payload to the server and back.</summary>
    public void RunRound()
    {
        var server = Task.Factory.StartNew(ServeRound, TaskCreationOptions.LongRunning);
        Send(_client, _clientSent);
        Receive(_client, _clientReceived);
        server.GetAwaiter().GetResult();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _client.Dispose();
        _server.Dispose();
        _listener.Stop();
    }

    private void ServeRound()
    {
        Receive(_server, _serverBuffer);
        Send(_server, _serverBuffer);
    }

    private static void Send(Socket socket, byte[] buffer)
    {
        int offset = 0;
        while (offset < buffer.Length)
        {
            offset += socket.Send(buffer, offset, Math.Min(ChunkBytes, buffer.Length - offset), SocketFlags.None);
        }
    }

    private static void Receive(Socket socket, byte[] buffer)
    {
        int offset = 0;
        while (offset < buffer.Length)
        {
            int read = socket.Receive(buffer, offset, Math.Min(ChunkBytes, buffer.Length - offset), SocketFlags.None);
            if (read == 0)
            {
                throw new IOException($"The loopback connection closed with {buffer.Length - offset} bytes of the round still to read.");
            }

            offset += read;
        }
    }
}
