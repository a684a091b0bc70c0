package crm.embedded;

import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import de.bwaldvogel.mongo.bson.Document;

/**
 * The BSON bytes of the documents the store holds, by document instance, for as long as
 * the instance lives.
 *
 * <p>H2 writes a B-tree page whole: when one document of a leaf changes, the commit
 * serializes every document of that leaf again. Writes here land on leaves all over the
 * tree (ids are hashes), so each commit re-encoded several unchanged documents per
 * changed one: page serialization was 30-45 % of this server's CPU while crm imported
 * accounts. With this cache a document is encoded once, the first time a page holding it
 * is written; a page written again copies the bytes of its unchanged documents.
 *
 * <p>Documents read from the file are not added when read: a scan (a list's page) would
 * copy the bytes of every document it reads, and keep them, for pages it never writes.
 * That cost list latency and memory in a run at 10,000 accounts.
 *
 * <p>What it relies on: a stored document is never changed in place. The collection hands
 * out copies to every query, update and delete ({@link Storage}), and H2's copy-on-write
 * pages rely on the same (a page being written must not change under it). An update stores
 * a new instance, which has no entry here.
 *
 * <p>Keys are weak and compared by identity: an entry lives as long as its document, which
 * H2's page cache bounds; entries of collected documents are dropped as they are noticed.
 */
final class Encodings {

    private final Map<Key, byte[]> bytes = new ConcurrentHashMap<>();
    private final ReferenceQueue<Document> collected = new ReferenceQueue<>();

    /** The bytes {@code document} was encoded to or read from; null when unknown. */
    byte[] get(Document document) {
        return bytes.get(new Key(document, null));
    }

    /** Remember the encoding of a document that will not change (see the class comment). */
    void put(Document document, byte[] encoded) {
        dropCollected();
        bytes.put(new Key(document, collected), encoded);
    }

    int size() {
        dropCollected();
        return bytes.size();
    }

    private void dropCollected() {
        for (Object gone = collected.poll(); gone != null; gone = collected.poll()) {
            bytes.remove(gone);
        }
    }

    /** A document, weakly and by identity. */
    private static final class Key extends WeakReference<Document> {
        private final int hash;

        Key(Document document, ReferenceQueue<Document> queue) {
            super(document, queue);
            this.hash = System.identityHashCode(document);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public boolean equals(Object other) {
            if (this == other) {
                return true;
            }
            if (!(other instanceof Key key)) {
                return false;
            }
            Document mine = get();
            return mine != null && mine == key.get();
        }
    }
}
