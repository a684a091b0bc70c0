package crm.embedded;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Collection;
import java.util.Map;

import org.h2.mvstore.WriteBuffer;
import org.h2.mvstore.type.BasicDataType;

import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.bson.BsonDecoder;
import de.bwaldvogel.mongo.wire.bson.BsonEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/**
 * Stores a document in the H2 store as BSON, with the library's own wire encoder and decoder.
 *
 * <p>The H2 backend stores documents with H2's default value type, which falls back to Java
 * serialization for them: class descriptors and a {@code HashMap}'s fields for every document
 * written or read back from the file. Profiled during a bulk at 5,000 accounts, reading and
 * writing that took more of the server's CPU than anything else. BSON is what the documents
 * arrived as, and round-trips every value the wire protocol carries. A document is written as
 * its BSON bytes, which begin with their own length.
 */
final class BsonDocumentType extends BasicDataType<Document> {

    static final BsonDocumentType INSTANCE = new BsonDocumentType();

    private static final ThreadLocal<ByteBuf> SCRATCH = ThreadLocal.withInitial(() -> Unpooled.buffer(4096));

    private BsonDocumentType() {
    }

    @Override
    public int getMemory(Document document) {
        return (int) Math.min(Integer.MAX_VALUE, estimate(document));
    }

    @Override
    public void write(WriteBuffer buffer, Document document) {
        ByteBuf scratch = SCRATCH.get();
        scratch.clear();
        BsonEncoder.encodeDocument(document, scratch);
        buffer.put(scratch.array(), scratch.arrayOffset() + scratch.readerIndex(), scratch.readableBytes());
        if (scratch.capacity() > 1 << 20) {
            SCRATCH.remove(); // do not keep a large document's buffer for good
        }
    }

    @Override
    public Document read(ByteBuffer buffer) {
        int start = buffer.position();
        int length = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(start);
        ByteBuf bytes;
        if (buffer.hasArray()) {
            bytes = Unpooled.wrappedBuffer(buffer.array(), buffer.arrayOffset() + start, length);
        } else {
            byte[] copy = new byte[length];
            buffer.duplicate().position(start).get(copy);
            bytes = Unpooled.wrappedBuffer(copy);
        }
        buffer.position(start + length);
        return BsonDecoder.decodeBson(bytes);
    }

    @Override
    public Document[] createStorage(int size) {
        return new Document[size];
    }

    /** A rough size in memory of a decoded value (H2 sizes its cache and its pages with it). */
    static long estimate(Object value) {
        if (value instanceof String string) {
            return 40L + string.length();
        }
        if (value instanceof Map<?, ?> map) {
            long size = 64;
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                size += 48 + estimate(entry.getKey()) + estimate(entry.getValue());
            }
            return size;
        }
        if (value instanceof Collection<?> collection) {
            long size = 40;
            for (Object element : collection) {
                size += 8 + estimate(element);
            }
            return size;
        }
        if (value instanceof byte[] bytes) {
            return 16L + bytes.length;
        }
        return 24;
    }
}
