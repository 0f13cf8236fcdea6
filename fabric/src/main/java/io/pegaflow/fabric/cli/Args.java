package io.pegaflow.fabric.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * {@code --name value}, {@code --name=value} and boolean {@code --flag} arguments of one subcommand. Unknown flags
 * and missing values are usage errors naming the flag.
 */
public final class Args {
    private final Map<String, String> values = new LinkedHashMap<>();
    private final List<String> positional = new ArrayList<>();

    private Args() {}

    /**
     * @param valued flags that take a value
     * @param booleans flags that take none
     */
    public static Args parse(String[] argv, Set<String> valued, Set<String> booleans) {
        Args args = new Args();
        for (int i = 0; i < argv.length; i++) {
            String arg = argv[i];
            if (!arg.startsWith("--")) {
                args.positional.add(arg);
                continue;
            }
            String name = arg.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (booleans.contains(name)) {
                if (value != null) {
                    throw new UsageException("--" + name + " takes no value");
                }
                args.values.put(name, "true");
            } else if (valued.contains(name)) {
                if (value == null) {
                    if (i + 1 >= argv.length || argv[i + 1].startsWith("--")) {
                        throw new UsageException("--" + name + " needs a value");
                    }
                    value = argv[++i];
                }
                args.values.put(name, value);
            } else {
                throw new UsageException("unknown option --" + name);
            }
        }
        return args;
    }

    public Optional<String> value(String name) {
        return Optional.ofNullable(values.get(name));
    }

    public boolean flag(String name) {
        return values.containsKey(name);
    }

    public List<String> positional() {
        return List.copyOf(positional);
    }

    /** Parses an int flag, naming the flag and the allowed range on failure. */
    public Optional<Integer> intValue(String name, int min, int max) {
        return value(name).map(text -> {
            try {
                int v = Integer.parseInt(text.trim());
                if (v < min || v > max) {
                    throw new UsageException("--" + name + ": " + v + " is out of range " + min + ".." + max);
                }
                return v;
            } catch (NumberFormatException e) {
                throw new UsageException("--" + name + ": \"" + text + "\" is not an integer");
            }
        });
    }

    /** A bad command line: printed with the usage hint, exit code 2. */
    public static final class UsageException extends RuntimeException {
        public UsageException(String message) {
            super(message);
        }
    }
}
