using System.Net;
using System.Net.Sockets;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>Free TCP ports on 127.0.0.1.</summary>
public static class LoopbackPorts
{
    /// <summary>
    /// Returns <paramref name="count"/> distinct ports that were free a moment ago. Another process may still take
    /// one before the caller binds it.
    /// </summary>
    public static int[] Free(int count)
    {
        // Holding every listener open until all ports are chosen keeps the same port from being returned twice.
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            listeners.ForEach(l => l.Stop());
        }
    }

    /// <summary>
    /// Binds a socket to a free port without listening, so that connections to the port are rejected and no other
    /// process can take it until the socket is disposed.
    /// </summary>
    public static Socket BindPortWithoutListener(out int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        return socket;
    }
}
