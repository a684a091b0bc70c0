package crm.embedded;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.DocumentWithPosition;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.ValueComparator;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A non-unique index kept in memory: equality lookups on all of its fields and, for an
 * index of several fields, exact counts and pages sorted by its last field.
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
 * <p>An index of several fields can also keep its documents in order: per value of its
 * leading fields, by the value of its last field and then by {@code _id}. The collection
 * builds that order the first time a query could use it ({@link #buildOrder}); from then on
 * every write keeps it. It answers
 * <ul>
 *   <li>a sorted page ({@link #walk}): documents are read in the index's order until the page
 *       is full, instead of reading and sorting every match (the account list sorted by name,
 *       10,000 accounts);
 *   <li>an exact count of a filter made of the index's fields alone ({@link #countCovered}),
 *       without reading a document (the account list's total).
 * </ul>
 * The order holds values, so it costs memory (a tree entry per document): only the indexes
 * such queries use have one. It holds scalars only: while a document has an array or an
 * embedded document in an indexed field, the index neither walks nor counts (such sorts and
 * matches follow other rules), and the collection sorts and counts as before.
 *
 * <p>Positions are the H2 backend's: a document's {@code _id} ({@link Storage.Collection_}).
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

    private static final String ID = "_id";

    /** A hash of indexed values to a position, or to a {@link Positions} set when several hold it. */
    private final Map<Integer, Object> positions = new HashMap<>();

    /** The positions of a hash several documents hold (a type of its own: a position is never one). */
    private static final class Positions extends HashSet<Object> {
        private static final long serialVersionUID = 1L;
    }

    /** The order, per value of the leading fields (normalized); null until built. */
    private Map<KeyValue, Ordered> ordered;

    /** Documents the order cannot hold (an array or an embedded document in an indexed field). */
    private int unordered;

    /** One value of the leading fields: its documents by the last field's value, then by _id. */
    private static final class Ordered {
        final TreeMap<Object, Object> byLast = new TreeMap<>(ValueComparator.asc());
        int documents;
    }

    /** The positions of documents sharing a value of the last field, in {@code _id} order. */
    private static final class OrderedPositions extends TreeSet<Object> {
        private static final long serialVersionUID = 1L;

        OrderedPositions() {
            super(ValueComparator.asc());
        }
    }

    /** Null when a field of the index is a path (see {@link TopLevelKeys}). */
    private final TopLevelKeys topLevel;

    SecondaryIndex(String name, List<IndexKey> keys) {
        // sparse: the library then accepts a null from remove() and getPosition(), which an
        // index that does not store positions per document returns (as its EmptyIndex does).
        super(name, keys, true);
        this.topLevel = TopLevelKeys.forFields(keys());
    }

    @Override
    public Set<KeyValue> getKeyValues(Document document) {
        Set<KeyValue> values = topLevel == null ? null : topLevel.of(document);
        return values != null ? values : super.getKeyValues(document);
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
        order(document, position, true);
    }

    @Override
    public synchronized Object remove(Document document) {
        Object position = positionOf(document);
        for (Integer hash : hashesOf(document)) {
            forget(hash, position);
        }
        order(document, position, false);
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
        if (ordered != null && !sameIndexedValues(oldDocument, newDocument)) {
            order(oldDocument, position, false);
            order(newDocument, position, true);
        }
    }

    @Override
    public boolean canHandle(Document query) {
        return combinations(query) != null;
    }

    @Override
    public synchronized Set<Object> getPositions(Document query) {
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
        ordered = null;
        unordered = 0;
    }

    // ------------------------------------------------------------------------- the order

    /** Whether this index's order could count this filter ({@link #countCovered}). */
    boolean couldCount(Document query) {
        return getKeys().size() > 1 && query.size() == getKeys().size() && leadingValues(query) != null
            && lastValues(query) != null;
    }

    /** Whether this index's order could give this filter's documents sorted so ({@link #walk}). */
    boolean couldWalk(Document query, Document orderBy) {
        return getKeys().size() > 1 && orderBy != null && sortsByLast(orderBy) && leadingValues(query) != null;
    }

    synchronized boolean hasOrder() {
        return ordered != null;
    }

    /** Builds the order from every document of the collection (under the collection's lock). */
    synchronized void buildOrder(Iterable<DocumentWithPosition<Object>> documents) {
        ordered = new HashMap<>();
        unordered = 0;
        for (DocumentWithPosition<Object> document : documents) {
            order(document.getDocument(), document.getPosition(), true);
        }
    }

    /**
     * How many documents match a filter made of this index's fields alone, each leading field
     * given one plain value and the last one a plain value or an {@code $in} of them; null for
     * any other filter, or when there is no order to count from. Exact: each document is held
     * once, under the values of its fields.
     */
    synchronized Integer countCovered(Document query) {
        if (ordered == null || unordered > 0 || query.size() != getKeys().size()) {
            return null;
        }
        KeyValue leading = leadingValues(query);
        List<Object> lasts = lastValues(query);
        if (leading == null || lasts == null) {
            return null;
        }
        Ordered values = ordered.get(leading);
        if (values == null) {
            return 0;
        }
        TreeSet<Object> distinct = new TreeSet<>(ValueComparator.asc());
        distinct.addAll(lasts);
        int count = 0;
        for (Object last : distinct) {
            Object held = values.byLast.get(last);
            count += held instanceof OrderedPositions several ? several.size() : held == null ? 0 : 1;
        }
        return count;
    }

    /** How many documents a walk for this filter would go through; -1 when there is no walk. */
    synchronized int walkLength(Document query, Document orderBy) {
        Ordered values = orderedFor(query, orderBy);
        return values == null ? -1 : values.documents;
    }

    /**
     * The positions of the documents whose leading fields have the values the filter gives
     * them, in the order {@code orderBy} asks (the last field ascending or descending, then
     * {@code _id}); null when this index cannot give it. The caller applies the whole filter
     * to each document, in this order, and stops when its page is full.
     */
    synchronized List<Object> walk(Document query, Document orderBy) {
        Ordered values = orderedFor(query, orderBy);
        if (values == null) {
            return null;
        }
        String last = getKeys().get(getKeys().size() - 1).getKey();
        boolean descending = direction(orderBy, last) < 0;
        boolean idDescending = orderBy.size() == 2 && direction(orderBy, ID) < 0;
        NavigableMap<Object, Object> inOrder = descending ? values.byLast.descendingMap() : values.byLast;
        List<Object> walked = new ArrayList<>(values.documents);
        for (Object held : inOrder.values()) {
            if (held instanceof OrderedPositions several) {
                walked.addAll(idDescending ? several.descendingSet() : several);
            } else {
                walked.add(held);
            }
        }
        return walked;
    }

    private Ordered orderedFor(Document query, Document orderBy) {
        if (ordered == null || unordered > 0 || orderBy == null || !sortsByLast(orderBy)) {
            return null;
        }
        KeyValue leading = leadingValues(query);
        if (leading == null) {
            return null;
        }
        Ordered values = ordered.get(leading);
        return values == null ? new Ordered() : values;
    }

    /** orderBy names the last field (ascending or descending), and at most {@code _id} after it. */
    private boolean sortsByLast(Document orderBy) {
        String last = getKeys().get(getKeys().size() - 1).getKey();
        List<String> sortKeys = new ArrayList<>(orderBy.keySet());
        return !ID.equals(last) && !sortKeys.isEmpty() && sortKeys.get(0).equals(last)
            && direction(orderBy, last) != 0
            && (sortKeys.size() == 1
                || (sortKeys.size() == 2 && sortKeys.get(1).equals(ID) && direction(orderBy, ID) != 0));
    }

    /** The one plain value the filter gives each leading field, normalized; else null. */
    private KeyValue leadingValues(Document query) {
        List<IndexKey> keys = getKeys();
        List<Object> leading = new ArrayList<>(keys.size() - 1);
        for (IndexKey key : keys.subList(0, keys.size() - 1)) {
            List<Object> values = plainValues(query.get(key.getKey()), query.containsKey(key.getKey()));
            if (values == null || values.size() != 1) {
                return null;
            }
            leading.add(values.get(0));
        }
        return new KeyValue(leading).normalized();
    }

    /** The values the filter gives the last field (one, or an $in of them), each one the order
     *  holds; else null. */
    private List<Object> lastValues(Document query) {
        String last = getKeys().get(getKeys().size() - 1).getKey();
        List<Object> values = plainValues(query.get(last), query.containsKey(last));
        if (values == null || values.isEmpty()) {
            return null;
        }
        for (Object value : values) {
            if (!isOrderable(value)) {
                return null;
            }
        }
        return values;
    }

    /** 1 or -1 as orderBy sorts this key; 0 for anything else ($meta, a missing key). */
    private static int direction(Document orderBy, String key) {
        if (orderBy.get(key) instanceof Number number) {
            double value = number.doubleValue();
            return value == 1 ? 1 : value == -1 ? -1 : 0;
        }
        return 0;
    }

    /** Puts a document into the order, or takes it out (nothing while there is no order). */
    private void order(Document document, Object position, boolean add) {
        if (ordered == null) {
            return;
        }
        List<IndexKey> keys = getKeys();
        List<Object> leading = new ArrayList<>(keys.size() - 1);
        boolean plain = isOrderable(position);
        for (IndexKey key : keys.subList(0, keys.size() - 1)) {
            Object value = Utils.getSubdocumentValueCollectionAware(document, key.getKey());
            plain &= isOrderable(value);
            leading.add(value);
        }
        // The value the library's sort compares (DocumentComparator reads it so).
        Object last = Utils.getSubdocumentValueCollectionAware(document, keys.get(keys.size() - 1).getKey());
        if (!plain || !isOrderable(last)) {
            unordered += add ? 1 : -1;
            return;
        }
        KeyValue key = new KeyValue(leading).normalized();
        if (add) {
            Ordered values = ordered.computeIfAbsent(key, k -> new Ordered());
            Object held = values.byLast.putIfAbsent(last, position);
            boolean added = held == null;
            if (held instanceof OrderedPositions several) {
                added = several.add(position);
            } else if (held != null && ValueComparator.asc().compare(held, position) != 0) {
                OrderedPositions several = new OrderedPositions();
                several.add(held);
                several.add(position);
                values.byLast.put(last, several);
                added = true;
            }
            if (added) {
                values.documents++;
            }
            return;
        }
        Ordered values = ordered.get(key);
        Object held = values == null ? null : values.byLast.get(last);
        if (held instanceof OrderedPositions several) {
            if (several.remove(position)) {
                values.documents--;
            }
            if (several.size() == 1) {
                values.byLast.put(last, several.first());
            }
        } else if (held != null && ValueComparator.asc().compare(held, position) == 0) {
            values.byLast.remove(last);
            values.documents--;
        }
        if (values != null && values.documents == 0) {
            ordered.remove(key);
        }
    }

    private boolean sameIndexedValues(Document one, Document other) {
        for (IndexKey key : getKeys()) {
            Object a = Utils.getSubdocumentValueCollectionAware(one, key.getKey());
            Object b = Utils.getSubdocumentValueCollectionAware(other, key.getKey());
            if (!Objects.equals(a, b)) {
                return false;
            }
        }
        return Objects.equals(positionOf(one), positionOf(other));
    }

    /** A value the order holds: a scalar that sorts and matches as itself. */
    private static boolean isOrderable(Object value) {
        return value == null || value instanceof Missing || value instanceof String || value instanceof Boolean
            || value instanceof Integer || value instanceof Long || value instanceof Double
            || value instanceof java.util.Date || value instanceof java.time.Instant
            || value instanceof de.bwaldvogel.mongo.bson.ObjectId;
    }

    // ----------------------------------------------------------------------- the hashes

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
        return Missing.ofNullable(Utils.getSubdocumentValue(document, ID));
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
