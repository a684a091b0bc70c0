package crm.embedded;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.h2.mvstore.WriteBuffer;
import org.h2.mvstore.type.BasicDataType;

import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.bson.BsonDecoder;
import de.bwaldvogel.mongo.wire.bson.BsonEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/**
 * A document's BSON bytes as an H2 value, written as they are (BSON begins with its own
 * length), and the encoding and decoding of documents with the library's own wire codec.
 *
 * <p>The H2 backend stored documents with H2's default value type, which falls back to Java
 * serialization for them: class descriptors and a {@code HashMap}'s fields for every document
 * written or read back. Profiled during a bulk at 5,000 accounts, that took more of the
 * server's CPU than anything else. BSON is what the documents arrived as, and round-trips
 * every value the wire protocol carries.
 */
final class BsonBytesType extends BasicDataType<byte[]> {

    static final BsonBytesType INSTANCE = new BsonBytesType();

    private static final ThreadLocal<ByteBuf> SCRATCH = ThreadLocal.withInitial(() -> Unpooled.buffer(4096));

    private BsonBytesType() {
    }

    static byte[] encode(Document document) {
        ByteBuf scratch = SCRATCH.get();
        scratch.clear();
        BsonEncoder.encodeDocument(document, scratch);
        byte[] bytes = new byte[scratch.readableBytes()];
        scratch.getBytes(scratch.readerIndex(), bytes);
        if (scratch.capacity() > 1 << 20) {
            SCRATCH.remove(); // do not keep a large document's buffer for good
        }
        return bytes;
    }

    static Document decode(byte[] bytes) {
        return BsonDecoder.decodeBson(Unpooled.wrappedBuffer(bytes));
    }

    @Override
    public int getMemory(byte[] bytes) {
        return 24 + bytes.length;
    }

    @Override
    public void write(WriteBuffer buffer, byte[] bytes) {
        buffer.put(bytes);
    }

    @Override
    public byte[] read(ByteBuffer buffer) {
        int length = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(buffer.position());
        byte[] bytes = new byte[length];
        buffer.get(bytes);
        return bytes;
    }

    @Override
    public byte[][] createStorage(int size) {
        return new byte[size][];
    }
}
