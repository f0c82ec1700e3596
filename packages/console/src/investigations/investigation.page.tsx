import { Subtitle1, Text, Title2, makeStyles, tokens } from '@fluentui/react-components';
import { ActionsView } from '../action-center/actions-view.tsx';

const useStyles = makeStyles({
  section: { display: 'block', marginTop: tokens.spacingVerticalXL },
  id: { wordBreak: 'break-all' },
});

/** The investigation's actions, decided right here; the investigations work fills in the rest of the page. */
export default function InvestigationPage({ params }: { params: Record<string, string> }) {
  const styles = useStyles();
  const id = params.id!;
  return (
    <>
      <Title2 as="h1">Investigation <span className={styles.id}>{id}</span></Title2>
      <Text block>The remediation actions this investigation proposed.</Text>
      <Subtitle1 as="h2" className={styles.section}>Pending actions</Subtitle1>
      <ActionsView view="pending" filters={{ investigationId: id }} label="Pending actions of this investigation" />
      <Subtitle1 as="h2" className={styles.section}>Action history</Subtitle1>
      <ActionsView view="history" filters={{ investigationId: id }} label="Action history of this investigation" />
    </>
  );
}
