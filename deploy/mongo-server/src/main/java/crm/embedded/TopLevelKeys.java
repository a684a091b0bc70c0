package crm.embedded;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;

import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.bson.Document;

/**
 * An index's key values for a document, without the library's path handling, when every
 * field of the index is a top-level one (no dot) and none of the document's values for
 * them is an array.
 *
 * <p>The library's {@code Index.getKeyValues} splits each field's path with a regular
 * expression, for every document and every index, on each insert, update and delete: a
 * seventh of this server's CPU while crm imported accounts. For a top-level field the value
 * is the document's own (or missing), exactly as the library resolves it, and the library
 * normalizes the values ({@link KeyValue#normalized}). A dotted field or an array value
 * (one entry per element) is left to the library: {@link #of} returns null.
 */
final class TopLevelKeys {

    private final List<String> fields;

    private TopLevelKeys(List<String> fields) {
        this.fields = fields;
    }

    /** The fast path for an index on {@code fields}, or null when one of them is a path. */
    static TopLevelKeys forFields(List<String> fields) {
        for (String field : fields) {
            if (field.isEmpty() || field.contains(".") || field.startsWith("$")) {
                return null;
            }
        }
        return new TopLevelKeys(List.copyOf(fields));
    }

    /** The one key value of {@code document}, or null when a value is an array (the library's). */
    Set<KeyValue> of(Document document) {
        List<Object> values = new ArrayList<>(fields.size());
        for (String field : fields) {
            Object value = document.getOrMissing(field);
            if (value instanceof Collection<?>) {
                return null;
            }
            values.add(value);
        }
        return Set.of(new KeyValue(values).normalized());
    }
}
