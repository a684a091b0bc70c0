package crm.embedded;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A non-unique index kept in memory, for equality lookups on all of its fields.
 *
 * <p>mongo-java-server accepts {@code createIndexes} for a non-unique index but keeps an empty
 * placeholder, so every filter other than {@code _id} scanned its collection: the import's
 * lookup by account name and the outbox relay's {@code outbox_pending} query grew with the
 * data. This index maps the hash of the values of its fields (normalized as the library's
 * unique indexes do, one entry per array element) to the positions of the documents holding
 * them. Only hashes are kept, not the values: a lookup may find a document whose values merely
 * share a hash, and that is harmless because the whole filter is then applied to every document
 * found, so the result is the scan's. It is rebuilt from the data whenever the server opens the
 * collection (the library fills an empty index it is given), so nothing of it is stored.
 *
 * <p>Positions are the H2 backend's: a document's {@code _id} is its key in the data map.
 * A filter uses the index when it names every field with a plain value or an {@code $in} of
 * plain values. The library calls {@code add}, {@code updateInPlace} and {@code remove} under
 * the collection's lock, with every other index; this index also locks itself, for the
 * library's reads that do not take the collection's lock (count).
 *
 * <p>Memory: a hash held by one document maps to that document's position alone, and only a
 * hash held by several gets a set: about 50 bytes per document and index.
 */
final class SecondaryIndex extends Index<Object> {

    /** More value combinations than this ($in on several fields): leave the filter to a scan. */
    static final int MAX_COMBINATIONS = 256;

    /** A hash of indexed values to a position, or to a {@link Positions} set when several hold it. */
    private final Map<Integer, Object> positions = new HashMap<>();

    /** The positions of a hash several documents hold (a type of its own: a position is never one). */
    private static final class Positions extends HashSet<Object> {
        private static final long serialVersionUID = 1L;
    }

    SecondaryIndex(String name, List<IndexKey> keys) {
        // sparse: the library then accepts a null from remove() and getPosition(), which an
        // index that does not store positions per document returns (as its EmptyIndex does).
        super(name, keys, true);
    }

    @Override
    public Object getPosition(Document document) {
        return null;
    }

    @Override
    public void checkAdd(Document document, MongoCollection<Object> collection) {
        // non-unique: nothing to refuse
    }

    @Override
    public synchronized void add(Document document, Object position, MongoCollection<Object> collection) {
        for (Integer hash : hashesOf(document)) {
            hold(hash, position);
        }
    }

    @Override
    public synchronized Object remove(Document document) {
        Object position = positionOf(document);
        for (Integer hash : hashesOf(document)) {
            forget(hash, position);
        }
        return null;
    }

    @Override
    public void checkUpdate(Document oldDocument, Document newDocument, MongoCollection<Object> collection) {
        // non-unique: nothing to refuse
    }

    @Override
    public synchronized void updateInPlace(Document oldDocument, Document newDocument, Object position,
                                           MongoCollection<Object> collection) {
        Set<Integer> before = hashesOf(oldDocument);
        Set<Integer> after = hashesOf(newDocument);
        for (Integer hash : before) {
            if (!after.contains(hash)) {
                forget(hash, position);
            }
        }
        for (Integer hash : after) {
            if (!before.contains(hash)) {
                hold(hash, position);
            }
        }
    }

    @Override
    public boolean canHandle(Document query) {
        return combinations(query) != null;
    }

    @Override
    public synchronized Iterable<Object> getPositions(Document query) {
        List<Document> combinations = combinations(query);
        if (combinations == null) {
            throw new IllegalArgumentException("index " + getName() + " cannot answer " + query);
        }
        Set<Object> found = new LinkedHashSet<>();
        for (Document probe : combinations) {
            for (Integer hash : hashesOf(probe)) {
                Object held = positions.get(hash);
                if (held instanceof Positions several) {
                    found.addAll(several);
                } else if (held != null) {
                    found.add(held);
                }
            }
        }
        return found;
    }

    /** How many fields this index would narrow a filter by (0: it cannot answer it). */
    int fieldsUsable(Document query) {
        return canHandle(query) ? getKeys().size() : 0;
    }

    @Override
    public synchronized long getCount() {
        long count = 0;
        for (Object held : positions.values()) {
            count += held instanceof Positions several ? several.size() : 1;
        }
        return count;
    }

    @Override
    public long getDataSize() {
        return 0;
    }

    @Override
    public synchronized void drop() {
        positions.clear();
    }

    /** The distinct hashes of a document's index entries (one per array element). */
    private Set<Integer> hashesOf(Document document) {
        Set<KeyValue> values = getKeyValues(document);
        Set<Integer> hashes = new HashSet<>(values.size() * 2);
        for (KeyValue value : values) {
            hashes.add(value.hashCode());
        }
        return hashes;
    }

    private void hold(Integer key, Object position) {
        Object held = positions.putIfAbsent(key, position);
        if (held == null || held.equals(position)) {
            return;
        }
        if (held instanceof Positions several) {
            several.add(position);
        } else {
            Positions several = new Positions();
            several.add(held);
            several.add(position);
            positions.put(key, several);
        }
    }

    private void forget(Integer key, Object position) {
        Object held = positions.get(key);
        if (held instanceof Positions several) {
            several.remove(position);
            if (several.size() == 1) {
                positions.put(key, several.iterator().next());
            } else if (several.isEmpty()) {
                positions.remove(key);
            }
        } else if (held != null && held.equals(position)) {
            positions.remove(key);
        }
    }

    private static Object positionOf(Document document) {
        return Missing.ofNullable(Utils.getSubdocumentValue(document, "_id"));
    }

    /**
     * The documents to look up: one per combination of the values the filter gives each
     * field, shaped as a document (dotted fields nested) so that {@link #getKeyValues}
     * normalizes them as it does stored documents; null when the filter does not give every
     * field a plain value or an {@code $in} of plain values.
     */
    private List<Document> combinations(Document query) {
        List<Document> probes = new ArrayList<>();
        probes.add(new Document());
        for (IndexKey key : getKeys()) {
            List<Object> values = plainValues(query.get(key.getKey()), query.containsKey(key.getKey()));
            if (values == null || values.isEmpty() || probes.size() * values.size() > MAX_COMBINATIONS) {
                return null;
            }
            List<Document> next = new ArrayList<>(probes.size() * values.size());
            for (Document probe : probes) {
                for (Object value : values) {
                    Document copy = probe.cloneDeeply();
                    put(copy, key.getKey(), value);
                    next.add(copy);
                }
            }
            probes = next;
        }
        return probes;
    }

    /** A condition's equality values: {@code v}, {@code {$eq: v}} or {@code {$in: [...]}}; else null. */
    private static List<Object> plainValues(Object condition, boolean present) {
        if (!present) {
            return null;
        }
        if (condition instanceof Document document) {
            if (document.size() != 1) {
                return null;
            }
            if (document.containsKey("$eq")) {
                Object value = document.get("$eq");
                return isPlain(value) ? List.of(value) : null;
            }
            if (document.get("$in") instanceof Collection<?> values) {
                for (Object value : values) {
                    if (!isPlain(value)) {
                        return null;
                    }
                }
                return new ArrayList<>(values);
            }
            return null; // another operator, or an embedded document compared whole
        }
        return isPlain(condition) ? List.of(condition) : null;
    }

    /** A value that equals only itself in a filter: not null (which also matches a missing field),
     *  not an array or document (which compare whole or by element), not a regular expression. */
    private static boolean isPlain(Object value) {
        return value instanceof String || value instanceof Boolean || value instanceof Number
            || value instanceof java.util.Date || value instanceof java.time.Instant
            || value instanceof de.bwaldvogel.mongo.bson.ObjectId || value instanceof java.util.UUID;
    }

    private static void put(Document document, String dottedKey, Object value) {
        int dot = dottedKey.indexOf('.');
        if (dot < 0) {
            document.put(dottedKey, value);
            return;
        }
        String head = dottedKey.substring(0, dot);
        Object inner = document.get(head);
        if (!(inner instanceof Document)) {
            inner = new Document();
            document.put(head, inner);
        }
        put((Document) inner, dottedKey.substring(dot + 1), value);
    }
}
