package io.pegaflow.config;

import java.util.Set;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.events.AliasEvent;
import org.yaml.snakeyaml.events.CollectionEndEvent;
import org.yaml.snakeyaml.events.CollectionStartEvent;
import org.yaml.snakeyaml.events.Event;
import org.yaml.snakeyaml.events.ImplicitTuple;
import org.yaml.snakeyaml.events.MappingStartEvent;
import org.yaml.snakeyaml.events.ScalarEvent;
import org.yaml.snakeyaml.events.SequenceStartEvent;
import org.yaml.snakeyaml.nodes.Tag;
import org.yaml.snakeyaml.parser.Parser;

/**
 * Sits between SnakeYAML's parser and its composer and replaces what a topology file may not use with a placeholder
 * scalar at the same place: an alias ({@code *base}) becomes a scalar tagged {@link #ALIAS} holding the anchor's name;
 * a value with a tag other than YAML's core ones ({@code !!str}, {@code !!int}, {@code !!float}, {@code !!bool},
 * {@code !!null}, {@code !!map}, {@code !!seq}) becomes a scalar tagged {@link #TAGGED} holding the tag, the whole
 * collection if it was one. The validator then reports each with its path and line, next to every other problem,
 * and the composer never expands an alias. Anchors on their own ({@code &base}) are harmless and stay. One per file;
 * not thread-safe.
 */
final class UnsupportedNodeFilter implements Parser {

    /** Placeholder tags; a tag the file itself spells this way is replaced as unsupported too. */
    static final Tag ALIAS = new Tag("!pegaflow:alias");

    static final Tag TAGGED = new Tag("!pegaflow:tagged");

    private static final Set<String> SCALAR_TAGS = Set.of(
            Tag.STR.getValue(), Tag.INT.getValue(), Tag.FLOAT.getValue(), Tag.BOOL.getValue(), Tag.NULL.getValue());
    private static final ImplicitTuple EXPLICIT = new ImplicitTuple(false, false);

    private final Parser parser;
    /** The next event, already translated; null when not yet read. */
    private Event next;

    UnsupportedNodeFilter(Parser parser) {
        this.parser = parser;
    }

    @Override
    public boolean checkEvent(Event.ID id) {
        Event event = peekEvent();
        return event != null && event.getEventId() == id;
    }

    @Override
    public Event peekEvent() {
        if (next == null && parser.peekEvent() != null) {
            next = translate(parser.getEvent());
        }
        return next;
    }

    @Override
    public Event getEvent() {
        Event event = peekEvent();
        next = null;
        return event;
    }

    private Event translate(Event event) {
        return switch (event) {
            case AliasEvent alias -> placeholder(ALIAS, alias.getAnchor(), event);
            case ScalarEvent scalar
            when !allowed(scalar.getTag(), SCALAR_TAGS) -> placeholder(TAGGED, scalar.getTag(), event);
            case MappingStartEvent mapping
            when !allowed(mapping.getTag(), Set.of(Tag.MAP.getValue())) -> skipCollection(mapping);
            case SequenceStartEvent sequence
            when !allowed(sequence.getTag(), Set.of(Tag.SEQ.getValue())) -> skipCollection(sequence);
            default -> event;
        };
    }

    /** No tag, the non-specific {@code !}, or one of {@code allowed}. */
    private static boolean allowed(String tag, Set<String> allowed) {
        return tag == null || tag.equals("!") || allowed.contains(tag);
    }

    /** Reads past the end of the collection {@code start} opens; one placeholder stands for all of it. */
    private Event skipCollection(CollectionStartEvent start) {
        int depth = 1;
        while (depth > 0) {
            Event event = parser.getEvent();
            if (event instanceof CollectionStartEvent) {
                depth++;
            } else if (event instanceof CollectionEndEvent) {
                depth--;
            }
        }
        return placeholder(TAGGED, start.getTag(), start);
    }

    private static ScalarEvent placeholder(Tag tag, String value, Event at) {
        return new ScalarEvent(
                null,
                tag.getValue(),
                EXPLICIT,
                value,
                at.getStartMark(),
                at.getEndMark(),
                DumperOptions.ScalarStyle.PLAIN);
    }
}
