package io.pegaflow.fabric.node;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Which GPUs a node serves: those listed ({@code --devices 0,1}, {@code --device N} or the topology's {@code gpus}),
 * none ({@code --devices none}: the host stand-in), or every GPU the driver shows ({@link Kind#AUTO}, the default:
 * on a machine without a usable CUDA driver that is none). Immutable.
 *
 * @param kind how the GPUs are chosen
 * @param listed the ordinals of {@link Kind#LISTED}, in the order given (the first is the pool's registering GPU);
 *     empty otherwise
 */
public record DeviceSelection(Kind kind, List<Integer> listed) {
    public enum Kind {
        /** Every visible GPU; none where CUDA is not usable. */
        AUTO,
        /** Exactly these GPUs (the node refuses to start if CUDA is not usable). */
        LISTED,
        /** No GPU: the host copy engine. */
        NONE
    }

    /** Ordinals run 0..1023, as for {@code --device}. */
    public static final int MAX_ORDINAL = 1023;

    public DeviceSelection {
        listed = List.copyOf(listed);
        if ((kind == Kind.LISTED) == listed.isEmpty()) {
            throw new IllegalArgumentException(kind + " with ordinals " + listed);
        }
    }

    public static DeviceSelection auto() {
        return new DeviceSelection(Kind.AUTO, List.of());
    }

    public static DeviceSelection none() {
        return new DeviceSelection(Kind.NONE, List.of());
    }

    /**
     * @throws IllegalArgumentException for an empty list, an ordinal out of 0..{@value #MAX_ORDINAL} or a duplicate
     */
    public static DeviceSelection of(List<Integer> ordinals) {
        if (ordinals.isEmpty()) {
            throw new IllegalArgumentException("no GPU listed");
        }
        List<Integer> seen = new ArrayList<>();
        for (int o : ordinals) {
            if (o < 0 || o > MAX_ORDINAL) {
                throw new IllegalArgumentException(o + " is out of range 0.." + MAX_ORDINAL);
            }
            if (seen.contains(o)) {
                throw new IllegalArgumentException("GPU " + o + " is listed twice");
            }
            seen.add(o);
        }
        return new DeviceSelection(Kind.LISTED, seen);
    }

    /**
     * {@code --devices} text: {@code all} (every visible GPU), {@code none}, or ordinals separated by commas.
     *
     * @throws IllegalArgumentException saying what is wrong
     */
    public static DeviceSelection parse(String text) {
        String t = text.trim();
        if (t.equalsIgnoreCase("all")) {
            return auto();
        }
        if (t.equalsIgnoreCase("none")) {
            return none();
        }
        List<Integer> ordinals = new ArrayList<>();
        for (String part : t.split(",", -1)) {
            String p = part.trim();
            if (!p.matches("\\d{1,4}")) {
                throw new IllegalArgumentException(
                        "\"" + text + "\" is not all, none or GPU indices like 0,1,2 (\"" + p + "\" is not an index)");
            }
            ordinals.add(Integer.parseInt(p));
        }
        return of(ordinals);
    }

    /**
     * The GPUs to open.
     *
     * @param visibleGpus how many GPUs the driver shows, or empty where CUDA is not usable
     * @return {@link Kind#LISTED}: the list (opening refuses an ordinal the driver does not show, naming those it
     *     does); {@link Kind#AUTO}: 0..visible-1, or none without CUDA; {@link Kind#NONE}: none
     */
    public List<Integer> resolve(Optional<Integer> visibleGpus) {
        return switch (kind) {
            case LISTED -> listed;
            case NONE -> List.of();
            case AUTO -> {
                List<Integer> all = new ArrayList<>();
                for (int i = 0; i < visibleGpus.orElse(0); i++) {
                    all.add(i);
                }
                yield all;
            }
        };
    }

    @Override
    public String toString() {
        return switch (kind) {
            case AUTO -> "all";
            case NONE -> "none";
            case LISTED -> String.join(",", listed.stream().map(String::valueOf).toList());
        };
    }
}
