package io.pegaflow.fabric.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** A {@code HOST:PORT} pair from the command line ({@code [::1]:50055} for IPv6). */
public record HostPort(String host, int port) {
    /**
     * @throws IllegalArgumentException naming what is wrong with {@code text}
     */
    public static HostPort parse(String text) {
        int colon = text.lastIndexOf(':');
        if (colon <= 0 || colon == text.length() - 1) {
            throw new IllegalArgumentException("\"" + text + "\" is not HOST:PORT");
        }
        String host = text.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(text.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("\"" + text.substring(colon + 1) + "\" is not a port");
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException(port + " is not a port (1..65535)");
        }
        return new HostPort(host, port);
    }

    @Override
    public String toString() {
        return host + ":" + port;
    }

    /** For picocli: a bad value is reported as {@code Invalid value for option '--addr': "x" is not HOST:PORT}. */
    public static final class Converter implements ITypeConverter<HostPort> {
        @Override
        public HostPort convert(String text) {
            try {
                return parse(text);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }
}
