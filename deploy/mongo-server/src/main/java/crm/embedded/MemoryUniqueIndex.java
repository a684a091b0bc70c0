package crm.embedded;

import java.util.AbstractMap.SimpleImmutableEntry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Map.Entry;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import de.bwaldvogel.mongo.backend.AbstractUniqueIndex;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A unique index (the {@code _id} index among them) kept in a hash map in memory instead of
 * an H2 map in the store file.
 *
 * <p>The H2 backend's unique index is an MVMap keyed by {@code KeyValue}, a class H2 can only
 * serialize with Java serialization: every comparison in its B-tree serialized both keys, and
 * every commit wrote the index's changed pages again. Profiled during a bulk at 5,000
 * accounts, that and the documents' own Java serialization took more of the server's CPU
 * than anything else. The uniqueness check is the library's ({@link AbstractUniqueIndex});
 * only where the keys live changes. The map is rebuilt from the documents whenever the server
 * opens the collection (the library fills an empty index it is given), so nothing of it is
 * stored and nothing can disagree with the data after a crash.
 *
 * <p>Positions are the H2 backend's (a document's {@code _id}, {@link Missing} for null), as
 * the H2 index stored them.
 */
final class MemoryUniqueIndex extends AbstractUniqueIndex<Object> {

    /** Keyed by the value itself for a one-field index (the _id index), by the KeyValue otherwise. */
    private final Map<Object, Object> positions = new ConcurrentHashMap<>();

    private static final Object NULL_KEY = new Object();

    /** Null when a field of the index is a path (see {@link TopLevelKeys}). */
    private final TopLevelKeys topLevel;

    MemoryUniqueIndex(String name, List<IndexKey> keys, boolean sparse) {
        super(name, keys, sparse);
        this.topLevel = TopLevelKeys.forFields(keys());
    }

    @Override
    public Set<KeyValue> getKeyValues(Document document) {
        Set<KeyValue> values = topLevel == null ? null : topLevel.of(document);
        return values != null ? values : super.getKeyValues(document);
    }

    @Override
    protected Object removeDocument(KeyValue keyValue) {
        return positions.remove(keyOf(keyValue));
    }

    @Override
    protected boolean putKeyPosition(KeyValue keyValue, Object position) {
        return positions.putIfAbsent(keyOf(keyValue), Missing.ofNullable(position)) == null;
    }

    @Override
    protected Iterable<Entry<KeyValue, Object>> getIterable() {
        // Only a regular expression on the index's field iterates (rare): KeyValues built here.
        List<Entry<KeyValue, Object>> entries = new ArrayList<>(positions.size());
        for (Entry<Object, Object> entry : positions.entrySet()) {
            Object key = entry.getKey();
            KeyValue keyValue = key instanceof KeyValue value ? value
                : new KeyValue(java.util.Collections.singletonList(key == NULL_KEY ? null : key));
            entries.add(new SimpleImmutableEntry<>(keyValue, entry.getValue()));
        }
        return entries;
    }

    @Override
    protected Object getPosition(KeyValue keyValue) {
        return positions.get(keyOf(keyValue));
    }

    @Override
    public long getCount() {
        return positions.size();
    }

    @Override
    public boolean isEmpty() {
        return positions.isEmpty();
    }

    @Override
    public long getDataSize() {
        return getCount();
    }

    /** The map key of a value: the value itself for a one-field index (null as a marker). */
    private static Object keyOf(KeyValue value) {
        if (value.size() == 1) {
            Object only = value.get(0);
            return only == null ? NULL_KEY : only;
        }
        return value;
    }

    @Override
    public void drop() {
        positions.clear();
    }
}
