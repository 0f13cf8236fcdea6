package io.pegaflow.config;

import java.util.ArrayList;
import java.util.List;

/** Problems found in one topology file, each as {@code path: message (line N)}. Not thread-safe. */
final class Problems {

    private final List<String> problems = new ArrayList<>();

    void add(String path, int line, String message) {
        problems.add(format(path, line, message));
    }

    int count() {
        return problems.size();
    }

    boolean isEmpty() {
        return problems.isEmpty();
    }

    List<String> list() {
        return List.copyOf(problems);
    }

    static String format(String path, int line, String message) {
        return line > 0 ? path + ": " + message + " (line " + line + ")" : path + ": " + message;
    }
}
