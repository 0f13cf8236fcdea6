package io.pegaflow.fabric.cli;

/** A {@code HOST:PORT} pair from the command line. */
public record HostPort(String host, int port) {
    public static HostPort parse(String flag, String text) {
        int colon = text.lastIndexOf(':');
        if (colon <= 0 || colon == text.length() - 1) {
            throw new Args.UsageException("--" + flag + ": \"" + text + "\" is not HOST:PORT");
        }
        String host = text.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(text.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new Args.UsageException("--" + flag + ": \"" + text.substring(colon + 1) + "\" is not a port");
        }
        if (port < 1 || port > 65535) {
            throw new Args.UsageException("--" + flag + ": " + port + " is not a port (1..65535)");
        }
        return new HostPort(host, port);
    }

    @Override
    public String toString() {
        return host + ":" + port;
    }
}
